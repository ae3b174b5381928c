// Who may call the cluster-API routes that workers serve too. Member routes are authorized against
// the node records in the datastore, which a worker does not have, so such routes are marked
// `caller: 'control-plane'` and checked here, before their body is read: against peers.json (every
// node keeps it current) and, on a control-plane node, against the node records as well. Both go
// through the daemon's cached fingerprint set (../trusted-peers.ts).
import type { NodeContext } from '../node-context.js';
import { ApiError, Request } from '../http.js';
import { fingerprintOf } from '../identity.js';
import { nodeRecordsGeneration } from '../../datastore/state.js';
import type { TrustedPeers, TrustedPeerSources } from '../trusted-peers.js';
import { PeerRecord, readPeers } from './peer.js';

/** The control-plane peer whose cluster certificate has this fingerprint, if any. */
export function controlPlanePeerWith(peers: PeerRecord[], fingerprint: string | undefined): PeerRecord | undefined {
  if (!fingerprint) return undefined;
  return peers.find((p) => p.role === 'control-plane' && p.fingerprint === fingerprint);
}

/** Where a node learns its members' certificate fingerprints: the node records (control plane) and peers.json. */
export function trustedPeerSources(d: Pick<NodeContext, 'layout' | 'crypto' | 'state'>): TrustedPeerSources {
  return {
    members: async () => {
      if (!d.state) return undefined;
      // An unreachable datastore trusts no one by the node records (peers.json still counts).
      const nodes = await d.state.listNodes().catch(() => undefined);
      return nodes && new Map(nodes.map((n) => [fingerprintOf(d.crypto, n.clusterCert), n.role] as const));
    },
    peers: () => new Map(readPeers(d.layout).map((p) => [p.fingerprint, p.role] as const)),
    peersFile: d.layout.peersFile,
    generation: nodeRecordsGeneration,
  };
}

/** True when the TLS client certificate belongs to a control-plane member of this node's cluster. */
export async function isControlPlaneCaller(d: { trustedPeers: TrustedPeers }, fingerprint: string | undefined): Promise<boolean> {
  return d.trustedPeers.isControlPlane(fingerprint);
}

/** Refuses (403) unless a control-plane member of this node's cluster is calling; `what` completes "may …". */
export async function requireControlPlaneCaller(d: { trustedPeers: TrustedPeers }, req: Request, what: string): Promise<void> {
  if (!(await isControlPlaneCaller(d, req.peerFingerprint))) {
    throw new ApiError(403, `only a control-plane member of this node’s cluster may ${what}`);
  }
}
