import { describe, expect, it } from 'vitest';
import { majority, removalSafety, VoterHealth } from '../../src/k8sd/membership/quorum.js';

const v = (name: string, healthy = true): VoterHealth => ({ name, voter: true, healthy });

describe('quorum math for removing a control-plane node', () => {
  it('majority', () => {
    expect([1, 2, 3, 4, 5].map(majority)).toEqual([1, 2, 2, 3, 3]);
  });

  it('allows removing a healthy voter of three healthy voters', () => {
    expect(removalSafety([v('a'), v('b'), v('c')], 'c').safe).toBe(true);
  });

  it('allows removing the dead voter of three (two healthy remain)', () => {
    expect(removalSafety([v('a'), v('b'), v('c', false)], 'c').safe).toBe(true);
  });

  it('refuses removing a healthy voter while another is dead', () => {
    const r = removalSafety([v('a'), v('b'), v('c', false)], 'b');
    expect(r.safe).toBe(false);
    expect(r.reason).toMatch(/leave 2 voters of which only 1 is healthy.*unhealthy: c/);
  });

  it('allows going from two voters to one', () => {
    expect(removalSafety([v('a'), v('b')], 'b').safe).toBe(true);
  });

  it('refuses when the datastore already lost quorum', () => {
    const r = removalSafety([v('a'), v('b', false), v('c', false)], 'c');
    expect(r.safe).toBe(false);
    expect(r.reason).toMatch(/lost quorum/);
  });

  it('refuses removing the last voter, and says so', () => {
    const r = removalSafety([v('a')], 'a');
    expect(r).toMatchObject({ safe: false, lastNode: true });
  });

  it('never objects to removing a learner or a non-member', () => {
    expect(removalSafety([v('a'), { name: 'b', voter: false, healthy: false }], 'b').safe).toBe(true);
    expect(removalSafety([v('a')], 'worker-1').safe).toBe(true);
  });

  it('five voters, two dead: removing a dead one is fine, a healthy one is not', () => {
    const five = [v('a'), v('b'), v('c'), v('d', false), v('e', false)];
    expect(removalSafety(five, 'e').safe).toBe(true);
    expect(removalSafety(five, 'a').safe).toBe(false);
  });
});

describe('etcd reconfiguration refusals', () => {
  it('retries only the refusals that pass once the members have talked for a few seconds', async () => {
    const { isTransientReconfigRefusal } = await import('../../src/datastore/etcd.js');
    expect(isTransientReconfigRefusal(new Error('etcd /v3/cluster/member/remove: etcdserver: unhealthy cluster'))).toBe(true);
    expect(isTransientReconfigRefusal(new Error('etcdserver: re-configuration failed due to not enough started members'))).toBe(true);
    expect(isTransientReconfigRefusal(new Error('etcdserver: member not found'))).toBe(false);
    expect(isTransientReconfigRefusal(undefined)).toBe(false);
  });
});
