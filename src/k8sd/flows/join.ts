// Joining a cluster, on the joining node: the control-plane and the worker step lists
// (join-control-plane.ts, join-worker.ts) run over one context. The cluster side is reached
// through JoinClusterClient, which membership implements over the cluster port (a test, with a double).
import { JoinConfig } from '../../config/join.js';
import { CryptoBackend } from '../../crypto/types.js';
import { EtcdClient } from '../../datastore/etcd.js';
import { LocalNodeState } from '../../datastore/state.js';
import { Logger } from '../../log.js';
import { Host } from '../../services/host.js';
import { ClusterIdentity } from '../identity.js';
import type { JoinRequestBody } from '../membership/join-server.js';
import type { JoinToken } from '../membership/token.js';
import { runFlow, StepEvent } from './flow.js';
import { controlPlaneJoinSteps } from './join-control-plane.js';
import { NodeFlowCtx, SecurityProvider } from './node-steps.js';
import { workerJoinSteps } from './join-worker.js';

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

/** Runs the join of the token's role; rolls back what it did on failure. */
export async function join(deps: JoinDeps, p: JoinParams, emit: (e: JoinEvent) => void = () => {}): Promise<{ node: LocalNodeState; etcd?: EtcdClient }> {
  const ctx: JoinCtx = { ...deps, p, emit, node: { name: p.name, address: p.address }, deadline: Date.now() + p.timeoutMs, written: [], createdDirs: [] };
  const role = p.token.role;
  await runFlow(`join (${role})`, role === 'control-plane' ? controlPlaneJoinSteps : workerJoinSteps, ctx, emit);
  return { node: ctx.record!, ...(ctx.etcd ? { etcd: ctx.etcd } : {}) };
}
