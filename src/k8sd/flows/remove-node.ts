// Removing a node, on the control-plane node that runs "k8s remove-node", once the checks passed
// (membership/remove.ts: the name, quorum, no CA rotation). Removal goes forward only: an etcd
// member cannot be put back as it was, so no step has an undo. Each step is idempotent instead, and
// running remove-node again finishes a removal that stopped half-way (the error names the step).
import { EtcdMember } from '../../datastore/etcd.js';
import { ApiError } from '../http.js';
import type { MemberRecord } from '../membership/store.js';
import { FlowError, runFlow, Step } from './flow.js';

/** What removal does to the cluster; membership implements it. */
export interface RemovalOps {
  /** Removes an etcd member through this node's etcd. */
  removeMember(id: string): Promise<void>;
  /** Removes this node's own etcd member through the other members (its own etcd stops with it). */
  removeMemberThroughOthers(id: string, others: EtcdMember[]): Promise<void>;
  deleteRecord(name: string): Promise<void>;
  stopKubelet(): Promise<void>;
  /** Asks the removed node to clean itself up. */
  tellToLeave(rec: MemberRecord): Promise<void>;
  /** Deletes the Kubernetes Node; a warning when it could not. */
  deleteKubernetesNode(name: string, settleMs: number): Promise<string | undefined>;
  refreshPeers(): Promise<void>;
}

export interface RemovalCtx {
  name: string;
  /** k8sd's record of the node, and its etcd member (either may be gone already). */
  rec?: MemberRecord;
  member?: EtcdMember;
  members: EtcdMember[];
  ops: RemovalOps;
  warnings: string[];
  /** The node was told to clean up: its kubelet may register its Node again while it stops. */
  told?: boolean;
}

const deleteRecord: Step<RemovalCtx> = {
  name: 'delete-record',
  title: 'Deleting the node record',
  async run(ctx) {
    if (ctx.rec) await ctx.ops.deleteRecord(ctx.name);
  },
};

const deleteKubernetesNode: Step<RemovalCtx> = {
  name: 'delete-kubernetes-node',
  title: 'Deleting the Kubernetes Node',
  async run(ctx) {
    const w = await ctx.ops.deleteKubernetesNode(ctx.name, ctx.told ? 20_000 : 0);
    if (w) ctx.warnings.push(w);
  },
};

/** Removing another node: its etcd member, its record; then it is told to leave and its Node deleted. */
export const removeOtherNodeSteps: Step<RemovalCtx>[] = [
  {
    name: 'remove-datastore-member',
    title: 'Removing the etcd member',
    async run(ctx) {
      if (!ctx.member) return;
      try {
        await ctx.ops.removeMember(ctx.member.id);
      } catch (err) {
        throw new ApiError(500, `could not remove the datastore member of "${ctx.name}" (nothing was changed): ${(err as Error).message}`);
      }
    },
  },
  deleteRecord,
  {
    name: 'tell-node',
    title: 'Asking the node to clean up',
    async run(ctx) {
      if (!ctx.rec) return;
      try {
        await ctx.ops.tellToLeave(ctx.rec);
        ctx.told = true;
      } catch (err) {
        ctx.warnings.push(`node "${ctx.name}" could not be told to clean up (${(err as Error).message}); run "k8s remove-node ${ctx.name} --force" on it before it joins again`);
      }
    },
  },
  // After the node was told to leave: its kubelet, while stopping, may register the Node again.
  deleteKubernetesNode,
  {
    name: 'refresh-peers',
    title: 'Updating the peer list',
    async run(ctx) {
      await ctx.ops.refreshPeers().catch(() => undefined);
    },
  },
];

/** A control-plane node removing itself; cleaning up the node itself comes after the answer. */
export const removeSelfSteps: Step<RemovalCtx>[] = [
  deleteRecord,
  {
    name: 'stop-kubelet',
    title: 'Stopping the kubelet',
    // The kubelet first: a running one would register its Node again.
    async run(ctx) {
      await ctx.ops.stopKubelet().catch(() => undefined);
    },
  },
  deleteKubernetesNode,
  {
    name: 'remove-datastore-member',
    title: 'Removing this node’s etcd member through the others',
    // Last, and through another member: removing our own member stops the etcd this node talks
    // to, sometimes before it answers.
    async run(ctx) {
      const others = ctx.members.filter((x) => x.id !== ctx.member?.id && !x.isLearner && x.clientURLs.length);
      if (ctx.member && others.length) await ctx.ops.removeMemberThroughOthers(ctx.member.id, others);
    },
  },
];

/** Runs a removal; a failure throws the step's own error (an ApiError keeps its status). */
export async function removeNode(steps: Step<RemovalCtx>[], ctx: RemovalCtx): Promise<string[]> {
  try {
    await runFlow(`remove ${ctx.name}`, steps, ctx);
  } catch (err) {
    if (err instanceof FlowError) throw err.cause instanceof ApiError ? err.cause : err;
    throw err;
  }
  return ctx.warnings;
}
