// k8s-worker's pre-upgrade-check: the worker application's own upgrade stack.
import { describe, expect, it } from 'vitest';
import { Context, findRelation } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, workerMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sWorkerCharm } from '../src/charm.js';

const UPGRADE = { id: 5, endpoint: 'upgrade', remoteUnitsData: { 1: {}, 3: {} } } as const;

function worker(member: boolean): Context {
  const cluster = new FakeCluster();
  const machine = cluster.machine('w-0');
  machine.snap = { ...INSTALLED_SNAP };
  if (member) cluster.members.set('w-0', { role: 'worker', address: '192.0.2.0' });
  return new Context(k8sWorkerCharm(machine.deps()), workerMeta, { appName: 'k8s-worker' });
}

describe('k8s-worker charm: pre-upgrade-check', () => {
  it('stores the worker units’ upgrade order on the leader of a ready node', async () => {
    const ctx = worker(true);
    const out = await ctx.run(ctx.on.action('pre-upgrade-check'), { leader: true, relations: [UPGRADE] });
    expect(ctx.actionResults).toEqual({ result: 'ready to upgrade', 'upgrade-order': 'k8s-worker/3,k8s-worker/1,k8s-worker/0' });
    expect(findRelation(out, 'upgrade')?.localAppData?.['upgrade-stack']).toBe('["k8s-worker/0","k8s-worker/1","k8s-worker/3"]');
  });

  it('refuses on a non-leader and on a node outside a ready cluster', async () => {
    await expect(worker(true).run(worker(true).on.action('pre-upgrade-check'), { leader: false, relations: [UPGRADE] })).rejects.toThrow(
      'pre-upgrade-check runs on the leader: juju run k8s-worker/leader pre-upgrade-check',
    );
    const ctx = worker(false);
    await expect(ctx.run(ctx.on.action('pre-upgrade-check'), { leader: true, relations: [UPGRADE] })).rejects.toThrow(
      'not ready to upgrade: this node is not part of a ready cluster',
    );
  });
});
