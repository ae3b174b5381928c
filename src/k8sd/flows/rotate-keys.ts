// Rotating the secrets-encryption key (the KMS KEK, or the aesgcm key) on every control-plane
// node at once, as named steps, each with its undo:
//
//   lock      the cluster's join lock, so no control-plane node joins mid-rotation
//             (undo: release it; it is released at the end either way);
//   collect   every control-plane node's keys; one that does not answer stops the rotation
//             before anything changed;
//   plan      the union of all keys plus a new one, newer than any (SecurityManager);
//   stage     every node adds the new key for decryption only. aesgcm: each node also waits
//             until its apiserver has reloaded the config. If any node fails, the undo removes
//             the staged key again wherever it was sent, and the rotation is refused;
//   activate  every node makes the new key current (this node first). From here on every
//             node can decrypt under both keys, so a node that misses this step is behind,
//             not broken: its apiserver keeps writing with the previous key. No undo.
//
// How a node is reached (this node directly, the others over the cluster API), the lock and the
// routes are secrets-rotation.ts's; this file is the order and the undo.
import type { ClusterRotationPlan, EncryptionKeys, EncryptionKeySummary, NodeKeys } from '../../security/index.js';
import type { Logger } from '../../log.js';
import { ApiError } from '../http.js';
import { runFlow, type Step, type StepEvent } from './flow.js';

/** One control-plane node's part in a rotation. */
export interface KeyHolder {
  name: string;
  keys(): Promise<EncryptionKeys>;
  summary(timeoutMs?: number): Promise<EncryptionKeySummary>;
  stage(keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary>;
  activate(keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary>;
  discard(keyId: string): Promise<EncryptionKeySummary>;
}

export interface ControlPlaneHolders {
  self: KeyHolder;
  peers: KeyHolder[];
}

/** What the rotation steps need of the node and the cluster. */
export interface KeyRotationDeps {
  log: Logger;
  /** Takes the cluster's join lock for this rotation; resolves to the lease. */
  takeLock(): Promise<string>;
  releaseLock(lease: string): Promise<void>;
  /** This node and every other control-plane member; refuses while one is joining. */
  controlPlane(): Promise<ControlPlaneHolders>;
  /** The union of the collected keys plus a new one. */
  planRotation(collected: Array<NodeKeys<EncryptionKeys>>): Promise<ClusterRotationPlan>;
}

export interface KeyRotationCtx extends KeyRotationDeps {
  lease?: string;
  cp?: ControlPlaneHolders;
  collected: Array<NodeKeys<EncryptionKeys>>;
  plan?: ClusterRotationPlan;
  /** Nodes the stage step sent the new key to (answered or not): its undo cleans them all. */
  stagedOn: KeyHolder[];
  activatedOn: string[];
  notActivated: Array<{ holder: KeyHolder; error?: Error }>;
  /** Nodes where the undo could not remove the staged key (harmless: it never encrypted anything). */
  leftStaged: string[];
}

/** Runs `f` on every node at once; one result per node, failed or not. */
export async function eachNode<T>(holders: KeyHolder[], f: (h: KeyHolder) => Promise<T>): Promise<Array<{ holder: KeyHolder; value?: T; error?: Error }>> {
  const settled = await Promise.allSettled(holders.map(f));
  return settled.map((s, i) => (s.status === 'fulfilled' ? { holder: holders[i]!, value: s.value } : { holder: holders[i]!, error: s.reason as Error }));
}

export function describeFailures(failures: Array<{ holder: KeyHolder; error?: Error }>): string {
  return failures.map((f) => `"${f.holder.name}" (${f.error?.message ?? 'no answer'})`).join(', ');
}

/** Releases the lock if the rotation holds it (once: the lock step's undo and the end of the run both call it). */
export async function releaseRotationLock(ctx: KeyRotationCtx): Promise<void> {
  if (!ctx.lease) return;
  const lease = ctx.lease;
  ctx.lease = undefined;
  await ctx.releaseLock(lease);
}

export const rotateKeysSteps: Array<Step<KeyRotationCtx>> = [
  {
    name: 'lock',
    title: 'Take the cluster lock (no control-plane join meanwhile)',
    run: async (ctx) => {
      ctx.lease = await ctx.takeLock();
    },
    rollback: async (ctx) => releaseRotationLock(ctx),
  },
  {
    name: 'collect',
    title: "Read every control-plane node's encryption keys",
    run: async (ctx) => {
      ctx.cp = await ctx.controlPlane();
      const read = await eachNode([ctx.cp.self, ...ctx.cp.peers], (h) => h.keys());
      const failed = read.filter((r) => r.error);
      if (failed.length > 0) {
        const names = failed.map((f) => f.holder.name);
        throw new ApiError(
          503,
          `cannot read the encryption keys of control-plane node(s) ${describeFailures(failed)}. Nothing was changed. ` +
            `Every control-plane node must take part in a key rotation: start k8sd on ${names.join(', ')} ` +
            `(or remove a node that is gone for good with "k8s remove-node ${names[0]}"), then rotate again`,
        );
      }
      ctx.collected = read.map((r) => ({ node: r.holder.name, keys: r.value! }));
    },
  },
  {
    name: 'plan',
    title: 'Plan the new key',
    run: async (ctx) => {
      ctx.plan = await ctx.planRotation(ctx.collected);
    },
  },
  {
    name: 'stage',
    title: 'Give every control-plane node the new key, for decryption only',
    run: async (ctx) => {
      const { plan, cp } = ctx as Required<Pick<KeyRotationCtx, 'plan' | 'cp'>>;
      const holders = [cp.self, ...cp.peers];
      ctx.stagedOn = holders;
      const failed = (await eachNode(holders, (h) => h.stage(plan.staged, plan.newKeyId))).filter((r) => r.error);
      if (failed.length > 0) {
        throw new ApiError(
          503,
          `control-plane node(s) ${describeFailures(failed)} did not take the new key; the rotation was undone and the previous key ` +
            `"${plan.previousKeyId}" stays in use. Check k8sd on ${failed.map((f) => f.holder.name).join(', ')}, then rotate again`,
        );
      }
    },
    rollback: async (ctx) => {
      const keyId = ctx.plan?.newKeyId;
      if (!keyId) return;
      const failed = (await eachNode(ctx.stagedOn, (h) => h.discard(keyId))).filter((r) => r.error);
      ctx.leftStaged = failed.map((f) => f.holder.name);
      if (failed.length > 0) {
        ctx.log.warn('could not remove the staged encryption key everywhere; it never encrypted anything, the next rotation drops it', { keyId, nodes: ctx.leftStaged });
        throw new Error(`the staged key ${keyId} is left on ${ctx.leftStaged.join(', ')}`);
      }
    },
  },
  {
    name: 'activate',
    title: 'Make the new key the write key on every control-plane node',
    run: async (ctx) => {
      const { plan, cp } = ctx as Required<Pick<KeyRotationCtx, 'plan' | 'cp'>>;
      // This node first: if that fails, no node writes with the new key and the stage can be undone.
      await cp.self.activate(plan.active, plan.newKeyId);
      ctx.activatedOn.push(cp.self.name);
      // Past this point every node decrypts under both keys: a node that misses the activation
      // keeps writing with the previous key, which every node reads. Never undo the stage now.
      for (const r of await eachNode(cp.peers, (h) => h.activate(plan.active, plan.newKeyId))) {
        if (r.error) ctx.notActivated.push(r);
        else ctx.activatedOn.push(r.holder.name);
      }
    },
  },
];

export function keyRotation(deps: KeyRotationDeps): KeyRotationCtx {
  return { ...deps, collected: [], stagedOn: [], activatedOn: [], notActivated: [], leftStaged: [] };
}

/**
 * Runs the rotation's steps (undoing the done ones if one fails) and releases the lock at the end
 * either way. The context then tells what happened, failed or not: which nodes activated, which
 * did not, where an undo left a staged key.
 */
export async function rotateKeys(ctx: KeyRotationCtx, onEvent?: (e: StepEvent) => void): Promise<void> {
  try {
    await runFlow('secrets-encryption rotate', rotateKeysSteps, ctx, onEvent);
  } finally {
    await releaseRotationLock(ctx);
  }
}
