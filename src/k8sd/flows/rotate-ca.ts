// Online CA rotation, on the control-plane node that runs "k8s rotate-certs-ca": the orchestration
// as named steps. The plan (which CA set each phase installs, node order, what is left after a
// stop) is certs/rotation-plan.ts; what one node does in a phase is certs/rotate-ca-node.ts; the
// API routes and the operations below (peer requests, CA generation, the lock keeper) are
// certs/rotate-ca.ts.
//
//   lock           take the cluster's join lock, kept renewed: no node joins or leaves meanwhile
//   check-pki      the recorded rotation, or the CAs this version can rotate (keys held by k8sd)
//   check-members  every member answers on the cluster API; no external certificate of a rotated CA
//   record         resume the recorded rotation, or generate the new CAs and record them
//   trust          on every node: the new CAs trusted next to the old ones
//   reissue        on every node: leaves and kubeconfigs re-issued under the new CAs
//   retire         on every node: the old CAs leave the bundles
//   finish         the datastore keeps the new CAs alone; the record is deleted
//   release-lock   the join lock is released
//
// Only the lock has an undo (it is released whatever fails). Everything else goes forward only,
// on purpose: the rotation is resumable. Each phase records itself and every node that finished
// it in the datastore before moving on, and a failure records where it stopped; running the
// command again resumes there, on the nodes that had not finished. Undoing instead would mean
// applying the previous CA set again on nodes that may be unreachable, which is the same problem
// again, so the record stays. The checks change nothing. Every phase is idempotent on a node.
import type { CaRotationResult } from '../../api/index.js';
import type { CaRotationPhase, CaRotationRecord, ClusterState, PkiRecord } from '../../datastore/state.js';
import type { Logger } from '../../log.js';
import { ROTATED_CAS } from '../../pki/table.js';
import { caSetFor, recordDone, recordPhase, remainingSteps, RotationMember, RotationStep, ROTATION_PHASES } from '../certs/rotation-plan.js';
import { ApiError } from '../http.js';
import type { MemberRecord } from '../membership/store.js';
import { FlowError, runFlow, Step } from './flow.js';

/** What the command streams to the CLI. */
export type RotationEvent =
  | { type: 'step'; step: CaRotationPhase; title: string }
  | { type: 'node'; step: CaRotationPhase; node: string; role: RotationMember['role']; detail: string }
  | { type: 'info'; message: string };

/** The datastore records a rotation reads and writes. */
export type RotationState = Pick<ClusterState, 'getCaRotation' | 'createCaRotation' | 'putCaRotation' | 'deleteCaRotation' | 'getPki' | 'putPki'>;

/** The join lock while the rotation holds it (renewed meanwhile; lost when the datastore was away for a lease). */
export interface HeldLock {
  /** Throws an ApiError once the lock was lost. */
  assertHeld(): void;
  release(): Promise<void>;
}

/** What the rotation does outside the datastore records; certs/rotate-ca.ts implements it. */
export interface RotationOps {
  /** Takes the join lock, waiting a while for a control-plane join to finish; an ApiError when another rotation runs. */
  lock(): Promise<HeldLock>;
  members(): Promise<MemberRecord[]>;
  /** Every other member answers on the cluster API and no control-plane node holds an external certificate of a rotated CA; an ApiError otherwise. */
  checkMembers(members: MemberRecord[]): Promise<void>;
  /** New CAs, the server and kubelet ones cross-signed by the old: a rotation that is not recorded yet. */
  newRotation(pki: PkiRecord): Promise<CaRotationRecord>;
  /** Applies a phase on one node (this one, or another through the cluster API); says what it did. */
  apply(record: CaRotationRecord, step: RotationStep, members: MemberRecord[]): Promise<string>;
}

export interface RotationCtx {
  /** The orchestrating node (this one). */
  self: string;
  /** The cluster's PKI as read before the lock was taken. */
  pki: PkiRecord;
  state: RotationState;
  ops: RotationOps;
  log: Logger;
  onEvent(e: RotationEvent): void;
  lock?: HeldLock;
  members?: MemberRecord[];
  record?: CaRotationRecord;
}

export const PHASE_TITLES: Record<CaRotationPhase, string> = {
  trust: 'Adding new CAs to every trust bundle',
  reissue: 'Re-issuing certificates and kubeconfigs under the new CAs',
  retire: 'Retiring the old CAs',
};

async function releaseLock(ctx: RotationCtx): Promise<void> {
  await ctx.lock?.release().catch((err: Error) => ctx.log.warn('CA rotation: could not release the join lock; it expires by itself', { error: err.message }));
}

/** One phase on every node that has not finished it; nothing when the recorded rotation is past it. */
function phaseStep(phase: CaRotationPhase): Step<RotationCtx> {
  return {
    name: phase,
    title: PHASE_TITLES[phase],
    async run(ctx) {
      const steps = remainingSteps(ctx.record!, ctx.members!, ctx.self).filter((s) => s.phase === phase);
      for (const [i, step] of steps.entries()) {
        ctx.lock!.assertHeld();
        if (i === 0) {
          ctx.onEvent({ type: 'step', step: phase, title: PHASE_TITLES[phase] });
          ctx.record = recordPhase(ctx.record!, phase);
          await ctx.state.putCaRotation(ctx.record);
          // The PKI record first: the control plane signs workers' client and kubelet serving certificates with it.
          const current = (await ctx.state.getPki())!;
          await ctx.state.putPki({ ...current, cas: caSetFor(phase, ctx.record, current.cas) });
        }
        let detail: string;
        try {
          detail = await ctx.ops.apply(ctx.record!, step, ctx.members!);
        } catch (err) {
          const message = (err as Error).message;
          ctx.record = { ...ctx.record!, lastError: { phase, node: step.node.name, message, at: new Date().toISOString() } };
          await ctx.state.putCaRotation(ctx.record).catch(() => undefined);
          throw new ApiError(
            502,
            `the ${phase} phase failed on ${step.node.role} node "${step.node.name}": ${message}. ` +
              'The rotation stopped there and is recorded; fix the cause and run "k8s rotate-certs-ca" again to resume it',
          );
        }
        ctx.onEvent({ type: 'node', step: phase, node: step.node.name, role: step.node.role, detail });
        ctx.record = recordDone(ctx.record!, phase, step.node.name);
        await ctx.state.putCaRotation(ctx.record);
      }
    },
  };
}

export const rotateCaSteps: Step<RotationCtx>[] = [
  {
    name: 'lock',
    title: 'Taking the cluster’s join lock',
    async run(ctx) {
      ctx.lock = await ctx.ops.lock();
    },
    rollback: releaseLock,
  },
  {
    name: 'check-pki',
    title: 'Checking that the CAs can be rotated',
    async run(ctx) {
      ctx.record = await ctx.state.getCaRotation();
      if (ctx.record) return;
      const missing = ROTATED_CAS.filter((n) => !ctx.pki.cas[n]);
      if (missing.length) {
        throw new ApiError(409, `the cluster's PKI record holds no ${missing.join(', ')} (the cluster was bootstrapped before k8sd had it); this version cannot rotate its CAs`);
      }
      if (ROTATED_CAS.some((n) => !ctx.pki.cas[n].key)) {
        throw new ApiError(400, 'a CA was supplied without its key (externally managed); rotate it with your own PKI and install the results with refresh-certs --external-certificates');
      }
    },
  },
  {
    name: 'check-members',
    title: 'Checking that every node answers',
    // Under the join lock: no control-plane join is half-way, and workers check for a recorded rotation after registering.
    async run(ctx) {
      ctx.members = await ctx.ops.members();
      await ctx.ops.checkMembers(ctx.members);
      ctx.onEvent({ type: 'info', message: `every node answers: ${ctx.members.map((m) => `${m.name} (${m.role})`).join(', ')}` });
    },
  },
  {
    name: 'record',
    title: 'Recording the rotation',
    async run(ctx) {
      const r = ctx.record;
      if (r) {
        const done = r.done.length ? `; done on ${r.done.join(', ')}` : '';
        const failed = r.lastError ? `; it stopped on ${r.lastError.node}: ${r.lastError.message}` : '';
        ctx.onEvent({ type: 'info', message: `resuming the CA rotation started on ${r.startedOn} at ${r.startedAt} in its ${r.phase} phase${done}${failed}` });
        return;
      }
      const fresh = await ctx.ops.newRotation(ctx.pki);
      if (!(await ctx.state.createCaRotation(fresh))) throw new ApiError(409, 'another CA rotation was recorded a moment ago; run "k8s rotate-certs-ca" again to resume it');
      ctx.record = fresh;
    },
  },
  ...ROTATION_PHASES.map(phaseStep),
  {
    name: 'finish',
    title: 'Keeping the new CAs alone',
    async run(ctx) {
      const current = (await ctx.state.getPki())!;
      await ctx.state.putPki({ ...current, cas: caSetFor('retire', ctx.record!, current.cas) });
      await ctx.state.deleteCaRotation();
      ctx.log.info('CA rotation complete', { cas: ROTATED_CAS, nodes: ctx.members!.map((m) => m.name) });
    },
  },
  {
    name: 'release-lock',
    title: 'Releasing the join lock',
    run: releaseLock,
  },
];

/**
 * Runs the rotation; returns the new CAs' common names and the nodes. A failure throws the step's
 * own error when it is an ApiError (it says what to do), else one that names the step.
 */
export async function rotateCas(ctx: RotationCtx, commonName: (pem: string) => string): Promise<CaRotationResult> {
  try {
    await runFlow('CA rotation', rotateCaSteps, ctx);
  } catch (err) {
    if (err instanceof FlowError && err.cause instanceof ApiError) throw err.cause;
    throw err;
  }
  return { cas: Object.fromEntries(ROTATED_CAS.map((n) => [n, commonName(ctx.record!.fresh[n].cert)])), nodes: ctx.members!.map((m) => m.name).sort() };
}
