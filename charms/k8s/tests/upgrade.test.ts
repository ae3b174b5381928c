// The upgrade flow on the `upgrade` peer relation: pre-upgrade-check stores the order, and after
// upgrade-charm the units install the new snap resource one at a time. State in → state out.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Context, findRelation, type RelationState, type State } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { k8sMeta, snapResources, updateRelation } from '../../k8s-common/tests/scenario-helpers.js';
import { buildUpgradeStack, NEW_RESOURCE_WITHOUT_CHECK } from '../../k8s-common/src/upgrade.js';
import { k8sCharm } from '../src/charm.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;
const UPGRADE_ID = 2;
const files = snapResources();
const newer = path.join(files.dir, 'k8s_1.37_amd64.snap');
writeFileSync(newer, 'hsqs, a newer squashfs image');
afterAll(() => rmSync(files.dir, { recursive: true, force: true }));

const installs = (cluster: FakeCluster): string[] => cluster.commands.filter((line) => line.includes(': snap install'));

function upgradeRelation(units: Record<number, Record<string, string>>, app: Record<string, string> = {}): RelationState {
  return { id: UPGRADE_ID, endpoint: 'upgrade', localAppData: app, remoteUnitsData: units };
}

/** A bootstrapped leader k8s/0 installed from the resource, with peers on `upgrade`. */
async function leaderWith(peers: Record<number, Record<string, string>>): Promise<{ cluster: FakeCluster; ctx: Context; state: State }> {
  const cluster = new FakeCluster();
  const ctx = new Context(k8sCharm(cluster.machine('node-0').deps()), k8sMeta);
  const installed = await ctx.run(ctx.on.install(), { leader: true, relations: [PEER, upgradeRelation(peers)], resources: { 'snap-installation': files.snap } });
  const state = await ctx.run(ctx.on.leaderElected(), installed);
  expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  return { cluster, ctx, state };
}

const upgradeBags = (state: State): RelationState | undefined => findRelation(state, 'upgrade');

describe('upgrade order', () => {
  it('puts the leader at the bottom and the highest unit number on top', () => {
    expect(buildUpgradeStack('k8s/1', ['k8s/3', 'k8s/0', 'k8s/2'])).toEqual(['k8s/1', 'k8s/0', 'k8s/2', 'k8s/3']);
  });
});

describe('k8s charm: pre-upgrade-check stores the upgrade stack', () => {
  it('after its checks pass, and reports the order', async () => {
    const { ctx, state } = await leaderWith({ 1: {}, 2: {} });
    const out = await ctx.run(ctx.on.action('pre-upgrade-check'), state);
    expect(ctx.actionResults?.['upgrade-order']).toBe('k8s/2,k8s/1,k8s/0');
    expect(upgradeBags(out)?.localAppData).toEqual({ 'upgrade-stack': '["k8s/0","k8s/1","k8s/2"]', 'upgrade-id': '1' });
  });

  it('refuses while an upgrade runs', async () => {
    const { ctx, state } = await leaderWith({ 1: {} });
    const running = updateRelation(state, UPGRADE_ID, { localAppData: { 'upgrade-stack': '["k8s/0","k8s/1"]', 'upgrade-id': '1' } });
    await expect(ctx.run(ctx.on.action('pre-upgrade-check'), running)).rejects.toThrow(
      'pre-upgrade-check: an upgrade is already in progress (units left: k8s/1, k8s/0); wait for it to finish',
    );
  });
});

describe('k8s charm: units upgrade one at a time', () => {
  it('refuses a new snap resource on a running unit without a pre-upgrade-check', async () => {
    const { cluster, ctx, state } = await leaderWith({ 1: {} });
    const out = await ctx.run(ctx.on.upgradeCharm(), { ...state, resources: { 'snap-installation': newer } });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: NEW_RESOURCE_WITHOUT_CHECK });
    expect(installs(cluster)).toHaveLength(1);
  });

  it('a stack alone changes nothing until upgrade-charm', async () => {
    const { cluster, ctx, state } = await leaderWith({ 1: {} });
    const checked = await ctx.run(ctx.on.action('pre-upgrade-check'), state);
    const out = await ctx.run(ctx.on.updateStatus(), checked);
    expect(upgradeBags(out)?.localUnitData?.state).toBeUndefined();
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(installs(cluster)).toHaveLength(1);
  });

  it('the leader waits for the unit on top, pops it once completed, then upgrades itself and clears the stack', async () => {
    const { cluster, ctx, state } = await leaderWith({ 1: {} });
    const checked = await ctx.run(ctx.on.action('pre-upgrade-check'), state);
    const refreshed = { ...checked, resources: { 'snap-installation': newer } };

    // k8s/1 is on top and has not reported yet: the leader says ready and waits, installing nothing.
    const waiting = await ctx.run(ctx.on.upgradeCharm(), refreshed);
    expect(upgradeBags(waiting)?.localUnitData).toMatchObject({ state: 'ready', 'upgrade-id': '1' });
    expect(waiting.unitStatus).toEqual({ status: 'waiting', message: 'Upgrade in progress: waiting for k8s/1 to upgrade first' });
    expect(installs(cluster)).toHaveLength(1);

    // k8s/1 has upgraded (a completed state from an older upgrade would not count).
    const stale = updateRelation(waiting, UPGRADE_ID, { remoteUnitsData: { 1: { state: 'completed', 'upgrade-id': '0' } } });
    expect((await ctx.run(ctx.on.relationChanged(relationOf(stale), { remoteUnit: 1 }), stale)).unitStatus.message).toBe(
      'Upgrade in progress: waiting for k8s/1 to upgrade first',
    );
    const done = updateRelation(waiting, UPGRADE_ID, { remoteUnitsData: { 1: { state: 'completed', 'upgrade-id': '1' } } });
    const own = await ctx.run(ctx.on.relationChanged(relationOf(done), { remoteUnit: 1 }), done);
    expect(installs(cluster)).toEqual([
      'node-0: snap install k8s_1.36_amd64.snap --dangerous --classic',
      'node-0: snap install k8s_1.37_amd64.snap --dangerous --classic',
    ]);
    expect(upgradeBags(own)?.localAppData?.['upgrade-stack']).toBe('["k8s/0"]');
    expect(upgradeBags(own)?.localUnitData?.state).toBe('completed');

    const after = await ctx.run(ctx.on.updateStatus(), own);
    expect(upgradeBags(after)?.localAppData?.['upgrade-stack']).toBeUndefined();
    expect(upgradeBags(after)?.localUnitData?.state).toBe('idle');
    expect(after.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('the unit on top waits until every unit still in the stack is ready', async () => {
    const cluster = new FakeCluster();
    const ctx = new Context(k8sCharm(cluster.machine('node-2').deps()), k8sMeta, { unitId: 2 });
    const app = { 'upgrade-stack': '["k8s/0","k8s/1","k8s/2"]', 'upgrade-id': '4' };
    const relation = upgradeRelation({ 0: { state: 'ready', 'upgrade-id': '4' }, 1: { state: 'idle' } }, app);
    const out = await ctx.run(ctx.on.upgradeCharm(), { relations: [PEER, relation], resources: { 'snap-installation': newer }, storedState: { 'snap-source': 'file:1:1:' + '0'.repeat(64) } });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Upgrade in progress: waiting for k8s/1 to be ready' });
    expect(upgradeBags(out)?.localUnitData).toEqual({ state: 'ready', 'upgrade-id': '4' });
    expect(installs(cluster)).toEqual([]);
  });
});

function relationOf(state: State): RelationState {
  const relation = upgradeBags(state);
  if (!relation) throw new Error('no upgrade relation');
  return relation;
}
