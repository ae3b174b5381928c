// What the two join step lists (join-control-plane.ts, join-worker.ts) run over, and the register
// request both send; join.ts picks the list by the token's role.
import { JoinConfig } from '../../config/join.js';
import { CryptoBackend } from '../../crypto/types.js';
import { LocalNodeState } from '../../datastore/state.js';
import { Logger } from '../../log.js';
import { Host } from '../../services/host.js';
import { ClusterIdentity } from '../identity.js';
import type { JoinRequestBody } from '../membership/join-messages.js';
import type { JoinRole, JoinToken } from '../membership/token.js';
import { StepEvent } from './flow.js';
import { NodeFlowCtx, SecurityProvider } from './node-steps.js';

export interface JoinParams {
  token: JoinToken;
  name: string;
  address: string;
  config: JoinConfig;
  timeoutMs: number;
}

export type JoinEvent = StepEvent | { type: 'info'; message: string };

/** The cluster's side of a join, as the joining node calls it. */
export interface JoinClusterClient {
  /** Sends the join request to the token's control-plane nodes; waits while another join holds the lock. */
  register<T>(body: JoinRequestBody): Promise<T>;
  /** Asks for the etcd learner to be promoted; a PeerApiError with status 409 while it catches up. */
  promote(memberId: string): Promise<void>;
  /** Tells the cluster to undo this join (its etcd member and record); once, and only after register answered. */
  abort(memberId?: string): Promise<void>;
}

export interface JoinDeps {
  host: Host;
  log: Logger;
  crypto: CryptoBackend;
  identity: ClusterIdentity;
  security: SecurityProvider;
  fipsEnabled: boolean;
  /** The cluster, reached over its cluster port. */
  remote: JoinClusterClient;
}

export interface JoinCtx extends JoinDeps, NodeFlowCtx {
  p: JoinParams;
  emit: (e: JoinEvent) => void;
  /** This node's membership record, once the last step has written it. */
  record?: LocalNodeState;
}

/** The register request of a join: the token, this node and its cluster certificate, FIPS mode (a worker adds its CSRs). */
export function registerRequest(ctx: JoinCtx, role: JoinRole): JoinRequestBody {
  return {
    token: { name: ctx.p.token.name, secret: ctx.p.token.secret },
    role,
    node: { name: ctx.p.name, address: ctx.p.address, clusterCert: ctx.identity.cert },
    fips: ctx.fipsEnabled,
  };
}
