// Who may call the cluster-API routes that workers serve too. The dispatcher authorizes callers
// against the node records in the datastore, which a worker does not have, so such routes are
// marked untrusted and check their caller here: against peers.json (every node keeps it current)
// and, on a control-plane node, against the node records as well.
import type { K8sd } from '../daemon.js';
import { ApiError, Request } from '../http.js';
import { fingerprintOf } from '../identity.js';
import { PeerRecord, readPeers } from './peer.js';
import { MembershipStore } from './store.js';

/** The control-plane peer whose cluster certificate has this fingerprint, if any. */
export function controlPlanePeerWith(peers: PeerRecord[], fingerprint: string | undefined): PeerRecord | undefined {
  if (!fingerprint) return undefined;
  return peers.find((p) => p.role === 'control-plane' && p.fingerprint === fingerprint);
}

/** True when the TLS client certificate belongs to a control-plane member of this node's cluster. */
export async function isControlPlaneCaller(d: K8sd, fingerprint: string | undefined): Promise<boolean> {
  if (!fingerprint) return false;
  if (controlPlanePeerWith(readPeers(d.layout), fingerprint)) return true;
  if (!d.state) return false;
  return new MembershipStore(d.state)
    .members()
    .then((ms) => ms.some((r) => r.role === 'control-plane' && fingerprintOf(d.crypto, r.clusterCert) === fingerprint))
    .catch(() => false);
}

/** Refuses (403) unless a control-plane member of this node's cluster is calling; `what` completes "may …". */
export async function requireControlPlaneCaller(d: K8sd, req: Request, what: string): Promise<void> {
  if (!(await isControlPlaneCaller(d, req.peerFingerprint))) {
    throw new ApiError(403, `only a control-plane member of this node’s cluster may ${what}`);
  }
}
