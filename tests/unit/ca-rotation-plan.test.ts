import { describe, expect, it } from 'vitest';
import { CaRotationRecord } from '../../src/datastore/state.js';
import { caSetFor, recordDone, recordPhase, remainingSteps, rotationOrder, RotationMember } from '../../src/k8sd/certs/rotation-plan.js';
import { CaMaterial } from '../../src/pki/signer.js';
import { CaName } from '../../src/pki/table.js';
import { caRotationRecord, fakeCa } from './doubles.js';

const ca = fakeCa;

const current: Record<CaName, CaMaterial> = {
  ca: ca('old-ca'),
  'client-ca': ca('old-client'),
  'front-proxy-ca': ca('old-proxy'),
  'etcd-ca': ca('etcd'),
  'kubelet-ca': ca('old-kubelet'),
};

const record = caRotationRecord;

const members: RotationMember[] = [
  { name: 'w2', role: 'worker' },
  { name: 'cp3', role: 'control-plane' },
  { name: 'w1', role: 'worker' },
  { name: 'cp1', role: 'control-plane' },
  { name: 'cp2', role: 'control-plane' },
];

const plan = (r: CaRotationRecord, orchestrator = 'cp2'): string[] => remainingSteps(r, members, orchestrator).map((s) => `${s.phase}:${s.node.name}`);

describe('the CA set of each phase', () => {
  it('trust: the old CA signs, the new one is trusted next to it; the etcd CA is kept', () => {
    const set = caSetFor('trust', record(), current);
    expect(set.ca).toEqual({ cert: 'old-ca-cert', key: 'old-ca-key', extraTrust: ['new-ca-cert'] });
    expect(set['client-ca']).toEqual({ cert: 'old-client-cert', key: 'old-client-key', extraTrust: ['new-client-cert'] });
    expect(set['etcd-ca']).toBe(current['etcd-ca']);
  });

  it('reissue: the new CA signs, the old one stays trusted, serving leaves carry the cross-signed server CA', () => {
    const set = caSetFor('reissue', record(), current);
    expect(set.ca).toEqual({ cert: 'new-ca-cert', key: 'new-ca-key', extraTrust: ['old-ca-cert'], chain: ['cross'] });
    expect(set['front-proxy-ca']).toEqual({ cert: 'new-proxy-cert', key: 'new-proxy-key', extraTrust: ['old-proxy-cert'] });
  });

  it('rotates the kubelet CA like the server CA: its serving leaves carry its own cross-signed CA during reissue', () => {
    expect(caSetFor('trust', record(), current)['kubelet-ca']).toEqual({ cert: 'old-kubelet-cert', key: 'old-kubelet-key', extraTrust: ['new-kubelet-cert'] });
    expect(caSetFor('reissue', record(), current)['kubelet-ca']).toEqual({ cert: 'new-kubelet-cert', key: 'new-kubelet-key', extraTrust: ['old-kubelet-cert'], chain: ['cross-kubelet'] });
    expect(caSetFor('retire', record(), current)['kubelet-ca']).toEqual({ cert: 'new-kubelet-cert', key: 'new-kubelet-key' });
  });

  it('keeps the kubelet CA as it is in a rotation recorded before that CA existed', () => {
    const { 'kubelet-ca': _o, ...old } = record().old;
    const { 'kubelet-ca': _f, ...fresh } = record().fresh;
    const legacy = record({ old: old as CaRotationRecord['old'], fresh: fresh as CaRotationRecord['fresh'] });
    delete legacy.crossSignedKubeletCa;
    expect(caSetFor('reissue', legacy, current)['kubelet-ca']).toBe(current['kubelet-ca']);
    expect(caSetFor('reissue', legacy, current).ca.chain).toEqual(['cross']);
  });

  it('retire: the new CAs alone', () => {
    const set = caSetFor('retire', record(), current);
    expect(set.ca).toEqual({ cert: 'new-ca-cert', key: 'new-ca-key' });
    expect(set['client-ca']).toEqual({ cert: 'new-client-cert', key: 'new-client-key' });
  });

  it('is derived from the record alone, whatever the datastore holds for the rotated CAs right now', () => {
    const midway = caSetFor('reissue', record(), current);
    expect(caSetFor('retire', record(), midway)).toEqual(caSetFor('retire', record(), current));
  });
});

describe('the order of the nodes', () => {
  it('puts the orchestrating node first, then the other control-plane nodes, then the workers', () => {
    expect(rotationOrder(members, 'cp2').map((m) => m.name)).toEqual(['cp2', 'cp1', 'cp3', 'w1', 'w2']);
  });
});

describe('what is left to do', () => {
  it('a new rotation: every phase on every node, each phase everywhere before the next', () => {
    const steps = plan(record());
    expect(steps).toHaveLength(15);
    expect(steps.slice(0, 5)).toEqual(['trust:cp2', 'trust:cp1', 'trust:cp3', 'trust:w1', 'trust:w2']);
    expect(steps.slice(5, 6)).toEqual(['reissue:cp2']);
    expect(steps.at(-1)).toBe('retire:w2');
  });

  it('a rotation that stopped in reissue on a worker resumes there, skipping the nodes that finished it', () => {
    const r = record({ phase: 'reissue', done: ['cp1', 'cp2', 'cp3'] });
    expect(plan(r)).toEqual(['reissue:w1', 'reissue:w2', 'retire:cp2', 'retire:cp1', 'retire:cp3', 'retire:w1', 'retire:w2']);
  });

  it('resumed from another control-plane node: that node goes first in the phases still ahead', () => {
    const r = record({ phase: 'reissue', done: ['cp2', 'cp1', 'cp3', 'w1'] });
    expect(plan(r, 'cp3')).toEqual(['reissue:w2', 'retire:cp3', 'retire:cp1', 'retire:cp2', 'retire:w1', 'retire:w2']);
  });

  it('a node removed after it finished the phase does not matter; every member that has not finished it is asked', () => {
    const r = record({ phase: 'retire', done: ['cp1', 'gone'] });
    expect(plan(r, 'cp1')).toEqual(['retire:cp2', 'retire:cp3', 'retire:w1', 'retire:w2']);
  });

  it('nothing is left once every node finished the last phase', () => {
    expect(plan(record({ phase: 'retire', done: members.map((m) => m.name) }))).toEqual([]);
  });
});

describe('recording progress', () => {
  it('a new phase starts with no node done', () => {
    const r = recordPhase(record({ done: ['cp1', 'cp2'] }), 'reissue');
    expect(r.phase).toBe('reissue');
    expect(r.done).toEqual([]);
  });

  it('the same phase keeps its progress (a resumed run)', () => {
    const r = record({ phase: 'reissue', done: ['cp1'] });
    expect(recordPhase(r, 'reissue')).toBe(r);
  });

  it('a finished node is recorded once, and a node that finished clears the last error', () => {
    let r = record({ lastError: { phase: 'trust', node: 'w1', message: 'unreachable', at: 'then' } });
    r = recordDone(r, 'trust', 'w1');
    r = recordDone(r, 'trust', 'w1');
    expect(r.done).toEqual(['w1']);
    expect(r.lastError).toBeUndefined();
  });

  it('finishing a node in the next phase moves the record on to that phase', () => {
    const r = recordDone(record({ phase: 'trust', done: ['cp1', 'w1'] }), 'reissue', 'cp1');
    expect(r.phase).toBe('reissue');
    expect(r.done).toEqual(['cp1']);
  });
});
