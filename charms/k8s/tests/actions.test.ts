// snapshot and pre-upgrade-check, state in → state out against a fake cluster.
import { describe, expect, it } from 'vitest';
import { ActionFailed, Context, type State } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sCharm } from '../src/charm.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;
const UPGRADE = { id: 2, endpoint: 'upgrade' } as const;

async function bootstrapped(): Promise<{ cluster: FakeCluster; ctx: Context; state: State }> {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  const ctx = new Context(k8sCharm(machine.deps()), k8sMeta);
  const state = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, UPGRADE] });
  return { cluster, ctx, state };
}

describe('k8s charm: snapshot action', () => {
  it('saves a named snapshot and returns its file', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    await ctx.run(ctx.on.action('snapshot', { name: 'before-upgrade' }), state);
    expect(cluster.commands).toContain('node-0: k8s snapshot save --name before-upgrade --output-format json');
    expect(ctx.actionResults).toEqual({
      file: '/var/snap/k8s/common/var/lib/k8sd/snapshots/before-upgrade-node-0.k8s-snapshot',
      revision: '42',
      keys: '300',
      bytes: '65536',
    });
  });

  it('refuses a bad name before running anything', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    await expect(ctx.run(ctx.on.action('snapshot', { name: '../etc' }), state)).rejects.toThrow(/name '\.\.\/etc' is not a snapshot name/);
    expect(cluster.snapshots).toBe(0);
  });

  it('fails cleanly on a unit that is not part of the cluster', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-3');
    machine.snap = { ...INSTALLED_SNAP };
    const ctx = new Context(k8sCharm(machine.deps()), k8sMeta, { unitId: 3 });
    await expect(ctx.run(ctx.on.action('snapshot'), { relations: [PEER] })).rejects.toThrow(/snapshot failed \(is this unit a control-plane node/);
  });
});

describe('k8s charm: pre-upgrade-check action', () => {
  it('passes when every node is Ready and kube-system runs', async () => {
    const { ctx, state } = await bootstrapped();
    await ctx.run(ctx.on.action('pre-upgrade-check'), state);
    expect(ctx.actionResults).toEqual({ result: 'ready to upgrade', nodes: '1', 'upgrade-order': 'k8s/0' });
  });

  it('fails listing the nodes and pods in the way', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    cluster.members.set('node-1', { role: 'worker', address: '192.0.2.1' });
    cluster.notReadyNodes.add('node-1');
    cluster.systemPods = [
      { name: 'coredns-abc', phase: 'Running', ready: false },
      { name: 'metrics-server-x', phase: 'Pending', ready: false },
      { name: 'job-done', phase: 'Succeeded', ready: false },
    ];
    const run = ctx.run(ctx.on.action('pre-upgrade-check'), state);
    await expect(run).rejects.toBeInstanceOf(ActionFailed);
    await expect(run).rejects.toThrow(
      'not ready to upgrade: node node-1 is not Ready; pod kube-system/coredns-abc is not ready; pod kube-system/metrics-server-x is Pending',
    );
  });

  it('runs on the leader only', async () => {
    const { ctx, state } = await bootstrapped();
    await expect(ctx.run(ctx.on.action('pre-upgrade-check'), { ...state, leader: false })).rejects.toThrow(
      'pre-upgrade-check runs on the leader: juju run k8s/leader pre-upgrade-check',
    );
  });
});
