// Joining a cluster, on the joining node: the control-plane and the worker step lists
// (join-control-plane.ts, join-worker.ts) run over one context. The cluster side is reached
// through JoinClusterClient, which membership implements over the cluster port (a test, with a double).
import { EtcdClient } from '../../datastore/etcd.js';
import { LocalNodeState } from '../../datastore/state.js';
import { runFlow } from './flow.js';
import { controlPlaneJoinSteps } from './join-control-plane.js';
import type { JoinCtx, JoinDeps, JoinEvent, JoinParams } from './join-context.js';
import { workerJoinSteps } from './join-worker.js';

export type { JoinClusterClient, JoinCtx, JoinDeps, JoinEvent, JoinParams } from './join-context.js';

/** Runs the join of the token's role; rolls back what it did on failure. */
export async function join(deps: JoinDeps, p: JoinParams, emit: (e: JoinEvent) => void = () => {}): Promise<{ node: LocalNodeState; etcd?: EtcdClient }> {
  const ctx: JoinCtx = { ...deps, p, emit, node: { name: p.name, address: p.address }, deadline: Date.now() + p.timeoutMs, written: [], createdDirs: [] };
  const role = p.token.role;
  await runFlow(`join (${role})`, role === 'control-plane' ? controlPlaneJoinSteps : workerJoinSteps, ctx, emit);
  return { node: ctx.record!, ...(ctx.etcd ? { etcd: ctx.etcd } : {}) };
}
