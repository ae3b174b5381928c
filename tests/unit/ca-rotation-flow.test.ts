// The orchestrating node's CA rotation as named steps, with the rotation's datastore records in
// memory (FakeRotationState) and a recording double of what the rotation does outside them: the
// phases in order on every node, a resume from the recorded phase, a failure that keeps the record
// and releases the lock, and a lost lock.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CaRotationRecord, PkiRecord } from '../../src/datastore/state.js';
import { runFlow } from '../../src/k8sd/flows/flow.js';
import { HeldLock, RotationCtx, RotationEvent, RotationOps, rotateCas, rotateCaSteps } from '../../src/k8sd/flows/rotate-ca.js';
import { ApiError } from '../../src/k8sd/http.js';
import type { MemberRecord } from '../../src/k8sd/membership/store.js';
import { createLogger } from '../../src/log.js';
import { caRotationRecord, fakeCa, FakeRotationState } from './doubles.js';

const ca = fakeCa;

const PKI: PkiRecord = {
  cas: { ca: ca('old-ca'), 'client-ca': ca('old-client'), 'front-proxy-ca': ca('old-proxy'), 'etcd-ca': ca('etcd'), 'kubelet-ca': ca('old-kubelet') },
  serviceAccountKey: 'sa-key',
} as PkiRecord;

const rotation = (over: Partial<CaRotationRecord> = {}): CaRotationRecord => caRotationRecord({ startedOn: 'cp-1', startedAt: '2026-12-07T18:00:00Z', ...over });

const member = (name: string, role: MemberRecord['role']): MemberRecord => ({ name, address: `10.0.0.${name.length}`, role, clusterCert: 'C', joinedAt: '' });
const MEMBERS = [member('w-1', 'worker'), member('cp-2', 'control-plane'), member('cp-1', 'control-plane')];

interface Doubles {
  ctx: RotationCtx;
  state: FakeRotationState;
  /** What the rotation did outside the datastore records, in order. */
  log: string[];
  events: RotationEvent[];
}

interface Options {
  recorded?: CaRotationRecord;
  pki?: PkiRecord;
  /** "phase:node" whose apply throws. */
  failOn?: string;
  /** The lock is lost after this many applies. */
  loseLockAfter?: number;
  refuseLock?: boolean;
  membersDown?: boolean;
  stateFailing?: 'put-pki' | 'put-rotation';
}

function doubles(o: Options = {}): Doubles {
  const log: string[] = [];
  const events: RotationEvent[] = [];
  const state = new FakeRotationState(o.pki ?? PKI, o.recorded, o.stateFailing);
  let applies = 0;
  const lock: HeldLock = {
    assertHeld() {
      if (o.loseLockAfter !== undefined && applies >= o.loseLockAfter) throw new ApiError(409, 'the CA rotation lost the join lock (test double)');
    },
    async release() {
      log.push('release-lock');
    },
  };
  const ops: RotationOps = {
    async lock() {
      if (o.refuseLock) throw new ApiError(409, 'a CA rotation is already running on "cp-2"; nothing was changed');
      log.push('lock');
      return lock;
    },
    async members() {
      return MEMBERS;
    },
    async checkMembers(members) {
      log.push(`check ${members.map((m) => m.name).join(',')}`);
      if (o.membersDown) throw new ApiError(503, 'not every node answers over the cluster API (test double)');
    },
    async newRotation() {
      log.push('new-cas');
      return rotation({ id: 'r-new' });
    },
    async apply(record, step) {
      applies++;
      const at = `${step.phase}:${step.node.name}`;
      log.push(`apply ${at}`);
      if (o.failOn === at) throw new Error('connection refused');
      expect(record.phase).toBe(step.phase);
      return `did ${at}`;
    },
  };
  const ctx: RotationCtx = {
    self: 'cp-1',
    pki: o.pki ?? PKI,
    state,
    ops,
    log: createLogger('test', path.join(os.tmpdir(), 'k8s-ca-rotation-flow-test.log'), 'error'),
    onEvent: (e) => events.push(e),
  };
  return { ctx, state, log, events };
}

const applied = (log: string[]): string[] => log.filter((l) => l.startsWith('apply ')).map((l) => l.slice('apply '.length));
const ALL_PHASES = ['trust', 'reissue', 'retire'].flatMap((p) => ['cp-1', 'cp-2', 'w-1'].map((n) => `${p}:${n}`));

describe('CA rotation as steps', () => {
  it('is the lock, the checks, the record, the three phases, the finish and the release, in that order', () => {
    expect(rotateCaSteps.map((s) => s.name)).toEqual(['lock', 'check-pki', 'check-members', 'record', 'trust', 'reissue', 'retire', 'finish', 'release-lock']);
    // Only the lock is undone: everything else is recorded, to be resumed.
    expect(rotateCaSteps.filter((s) => s.rollback).map((s) => s.name)).toEqual(['lock']);
  });

  it('a new rotation: checks under the lock, records new CAs, applies each phase on every node (this one, control planes, workers), keeps the new CAs alone', async () => {
    const { ctx, state, log, events } = doubles();
    const result = await rotateCas(ctx, (pem) => `CN of ${pem}`);
    expect(log.slice(0, 3)).toEqual(['lock', 'check w-1,cp-2,cp-1', 'new-cas']);
    expect(applied(log)).toEqual(ALL_PHASES);
    expect(log.at(-1)).toBe('release-lock');
    expect(log.filter((l) => l === 'release-lock')).toHaveLength(1);
    // Each phase is recorded, with the PKI record's CA set, before any node applies it; then each node's progress.
    expect(state.writes).toEqual([
      'create-rotation r-new',
      ...['trust', 'reissue', 'retire'].flatMap((p) => [`put-rotation ${p} done=`, 'put-pki', `put-rotation ${p} done=cp-1`, `put-rotation ${p} done=cp-1,cp-2`, `put-rotation ${p} done=cp-1,cp-2,w-1`]),
      'put-pki',
      'delete-rotation',
    ]);
    expect(state.rotation).toBeUndefined();
    expect(state.pki.cas.ca).toEqual({ cert: 'new-ca-cert', key: 'new-ca-key' });
    expect(state.pki.cas['etcd-ca']).toEqual(PKI.cas['etcd-ca']);
    expect(result).toEqual({ cas: { ca: 'CN of new-ca-cert', 'client-ca': 'CN of new-client-cert', 'front-proxy-ca': 'CN of new-proxy-cert', 'kubelet-ca': 'CN of new-kubelet-cert' }, nodes: ['cp-1', 'cp-2', 'w-1'] });
    expect(events.filter((e) => e.type === 'step').map((e) => e.type === 'step' && e.step)).toEqual(['trust', 'reissue', 'retire']);
    expect(events[0]).toEqual({ type: 'info', message: 'every node answers: w-1 (worker), cp-2 (control-plane), cp-1 (control-plane)' });
  });

  it('resumes a recorded rotation in its phase, on the nodes that had not finished it, without new CAs', async () => {
    const recorded = rotation({ phase: 'reissue', done: ['cp-1'], lastError: { phase: 'reissue', node: 'cp-2', message: 'timed out', at: '2026-12-07T18:05:00Z' } });
    const { ctx, state, log, events } = doubles({ recorded });
    await rotateCas(ctx, (pem) => pem);
    expect(log).not.toContain('new-cas');
    expect(applied(log)).toEqual(['reissue:cp-2', 'reissue:w-1', 'retire:cp-1', 'retire:cp-2', 'retire:w-1']);
    expect(events[1]).toEqual({ type: 'info', message: 'resuming the CA rotation started on cp-1 at 2026-12-07T18:00:00Z in its reissue phase; done on cp-1; it stopped on cp-2: timed out' });
    // The resumed phase is announced and its CA set stored again; the finished trust phase is not.
    expect(events.filter((e) => e.type === 'step').map((e) => e.type === 'step' && e.step)).toEqual(['reissue', 'retire']);
    expect(state.writes.slice(0, 3)).toEqual(['put-rotation reissue done=cp-1 stopped-on=cp-2', 'put-pki', 'put-rotation reissue done=cp-1,cp-2']);
    expect(state.rotation).toBeUndefined();
  });

  it('a phase that fails on a node keeps the record where it stopped, releases the lock, and a second run resumes there', async () => {
    const first = doubles({ failOn: 'reissue:w-1' });
    const err = await rotateCas(first.ctx, (pem) => pem).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
    expect((err as Error).message).toBe(
      'the reissue phase failed on worker node "w-1": connection refused. The rotation stopped there and is recorded; fix the cause and run "k8s rotate-certs-ca" again to resume it',
    );
    // The failure is recorded first, then the lock (the one undo) is released; no later phase ran.
    expect(first.log.slice(-2)).toEqual(['apply reissue:w-1', 'release-lock']);
    expect(first.state.writes.slice(-1)).toEqual(['put-rotation reissue done=cp-1,cp-2 stopped-on=w-1']);
    expect(first.state.rotation).toMatchObject({ id: 'r-new', phase: 'reissue', done: ['cp-1', 'cp-2'], lastError: { phase: 'reissue', node: 'w-1', message: 'connection refused' } });
    expect(first.state.pki.cas.ca).toMatchObject({ cert: 'new-ca-cert', extraTrust: ['old-ca-cert'] });

    const second = doubles({ recorded: first.state.rotation, pki: first.state.pki });
    await rotateCas(second.ctx, (pem) => pem);
    expect(applied(second.log)).toEqual(['reissue:w-1', 'retire:cp-1', 'retire:cp-2', 'retire:w-1']);
    expect(second.state.rotation).toBeUndefined();
  });

  it('on failure only the lock is undone, after the failing step', async () => {
    const { ctx, log } = doubles({ failOn: 'trust:cp-2' });
    const flowEvents: string[] = [];
    await expect(runFlow('CA rotation', rotateCaSteps, ctx, (e) => flowEvents.push(`${e.type} ${e.step}`))).rejects.toThrow('CA rotation failed at step "trust"');
    expect(flowEvents).toEqual(['step lock', 'step check-pki', 'step check-members', 'step record', 'step trust', 'rollback lock']);
    expect(log.slice(-2)).toEqual(['apply trust:cp-2', 'release-lock']);
  });

  it('an unexpected datastore error names its step, and the lock is released', async () => {
    const { ctx, log, state } = doubles({ stateFailing: 'put-pki' });
    await expect(rotateCas(ctx, (pem) => pem)).rejects.toThrow('CA rotation failed at step "trust": etcdserver: request timed out (test double)');
    expect(applied(log)).toEqual([]);
    expect(log.at(-1)).toBe('release-lock');
    expect(state.rotation).toMatchObject({ phase: 'trust', done: [] });
  });

  it('a lost lock stops the rotation before the next node, recorded for a resume', async () => {
    const { ctx, log, state } = doubles({ loseLockAfter: 4 });
    await expect(rotateCas(ctx, (pem) => pem)).rejects.toThrow('the CA rotation lost the join lock (test double)');
    expect(applied(log)).toEqual(['trust:cp-1', 'trust:cp-2', 'trust:w-1', 'reissue:cp-1']);
    expect(log.at(-1)).toBe('release-lock');
    expect(state.rotation).toMatchObject({ phase: 'reissue', done: ['cp-1'] });
  });

  it('a node that does not answer stops the rotation before anything is recorded', async () => {
    const { ctx, log, state } = doubles({ membersDown: true });
    const err = await rotateCas(ctx, (pem) => pem).catch((e: ApiError) => e);
    expect(err.status).toBe(503);
    expect(log).toEqual(['lock', 'check w-1,cp-2,cp-1', 'release-lock']);
    expect(state.writes).toEqual([]);
  });

  it('a CA supplied without its key cannot be rotated; nothing is generated or recorded', async () => {
    const pki = { ...PKI, cas: { ...PKI.cas, 'client-ca': { cert: 'external-client-ca' } } } as PkiRecord;
    const { ctx, log, state } = doubles({ pki });
    const err = await rotateCas(ctx, (pem) => pem).catch((e: ApiError) => e);
    expect(err.status).toBe(400);
    expect(log).toEqual(['lock', 'release-lock']);
    expect(state.writes).toEqual([]);
  });

  it('a lock held by another rotation changes nothing and has nothing to release', async () => {
    const { ctx, log, state } = doubles({ refuseLock: true });
    await expect(rotateCas(ctx, (pem) => pem)).rejects.toThrow('a CA rotation is already running on "cp-2"; nothing was changed');
    expect(log).toEqual([]);
    expect(state.writes).toEqual([]);
  });

  it('a rotation recorded by another node meanwhile is left to resume', async () => {
    const { ctx, state, log } = doubles();
    state.createCaRotation = async (r) => (state.writes.push(`create-rotation ${r.id}`), false);
    const err = await rotateCas(ctx, (pem) => pem).catch((e: ApiError) => e);
    expect(err.status).toBe(409);
    expect(applied(log)).toEqual([]);
    expect(log.at(-1)).toBe('release-lock');
  });
});
