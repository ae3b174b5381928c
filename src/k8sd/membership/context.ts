// What membership's parts (join server, join client, removal, tokens, the CSR signer) share: the
// node they run on and the Membership module's own state. The parts import this file rather than
// index.ts, which imports them, so that the membership folder reads as a tree.
import type { EtcdClient } from '../../datastore/etcd.js';
import type { LocalNodeState } from '../../datastore/state.js';
import type { Logger } from '../../log.js';
import type { PkiWrappingKeyFile } from '../../pki/key-wrap.js';
import type { PeerIdentity } from '../cluster/peer.js';
import type { SecurityProvider } from '../flows/bootstrap.js';
import type { ModuleRegistry, NodeContext } from '../node-context.js';
import type { TrustedPeers } from '../trusted-peers.js';
import type { MembershipStore } from './store.js';

/**
 * The node as membership sees it: the common context, plus what joining and leaving change. A
 * join adopts the datastore it joined (adoptDatastore) and runs the clustered hooks; leaving stops
 * the security services and forgets the datastore (forgetDatastore); a control plane's request to leave is checked
 * against the trusted peers. The daemon is one.
 */
export interface MembershipNode extends NodeContext, ModuleRegistry {
  readonly pkiKeys: PkiWrappingKeyFile;
  readonly security: SecurityProvider;
  readonly trustedPeers: TrustedPeers;
  /** The datastore this node joined becomes the node's (etcd and state; see daemon.ts). */
  adoptDatastore(etcd: EtcdClient): EtcdClient;
  /** Leaving: the datastore client is closed and dropped. */
  forgetDatastore(): void;
  clustered(node: LocalNodeState): Promise<void>;
}

/** The Membership module (index.ts) as its parts use it. */
export interface MembershipContext {
  readonly d: MembershipNode;
  readonly log: Logger;
  /** This node is tearing itself down after removal. */
  leaving: boolean;
  /** The membership records; an ApiError (503) while the datastore is not connected. */
  store(): MembershipStore;
  /** This node's certificate and key, for calls to peers. */
  peerIdentity(): PeerIdentity;
  /** Control plane: rewrites peers.json from the node records. */
  refreshPeers(): Promise<void>;
  stopControllers(): void;
}
