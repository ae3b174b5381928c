// What a module of k8sd may use of the node it runs on, instead of the whole daemon: the paths,
// the log, the host and its services, the crypto backend, the node's cluster identity, FIPS mode,
// the datastore once the node has one, and the one lock for operations that change the node.
// The daemon (daemon.ts, the composition root) is one; a test gives a small object instead.
import type { FipsMode } from '../crypto/fips.js';
import type { CryptoBackend } from '../crypto/types.js';
import type { EtcdClient } from '../datastore/etcd.js';
import type { ClusterState, LocalNodeState } from '../datastore/state.js';
import type { Layout } from '../layout.js';
import type { Logger } from '../log.js';
import type { Host } from '../services/host.js';
import type { Route } from './http.js';
import type { ClusterIdentity } from './identity.js';
import type { NodeOperationLock } from './node-lock.js';

export interface NodeContext {
  readonly layout: Layout;
  readonly log: Logger;
  readonly host: Host;
  readonly crypto: CryptoBackend;
  readonly identity: ClusterIdentity;
  readonly fips: FipsMode;
  /** The k8sd state in the datastore: control-plane nodes, once started, bootstrapped or joined. */
  readonly state?: ClusterState;
  readonly etcd?: EtcdClient;
  readonly lock: NodeOperationLock;
  /** This node's membership record; undefined until it bootstraps or joins. */
  node(): LocalNodeState | undefined;
  /** This node's record, or an ApiError (409 not clustered, 403 a worker). */
  requireControlPlane(): LocalNodeState;
}

/** Where a module registers itself (modules.ts): its API routes, and hooks for clustering and shutdown. */
export interface ModuleRegistry {
  readonly extraLocalRoutes: Route[];
  readonly extraClusterRoutes: Route[];
  /** Called once the node is clustered and its datastore is connected (at start-up and after bootstrap or join). */
  readonly onClustered: Array<(node: LocalNodeState) => Promise<void>>;
  /** Called on shutdown, before services stop. */
  readonly onStop: Array<() => Promise<void>>;
}
