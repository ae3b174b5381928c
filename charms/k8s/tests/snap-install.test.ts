// Where the snap comes from: the snap-installation resource (a .snap, or a tarball holding one),
// else the channel option; Blocked, naming what to attach or set, with neither or a bad one.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Context } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { k8sMeta, snapResources } from '../../k8s-common/tests/scenario-helpers.js';
import { NO_SNAP_SOURCE_MESSAGE } from '../../k8s-common/src/snap-source.js';
import { k8sCharm } from '../src/charm.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;
const files = snapResources();
afterAll(() => rmSync(files.dir, { recursive: true, force: true }));

function setup(): { cluster: FakeCluster; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-1');
  return { cluster, ctx: new Context(k8sCharm(machine.deps()), k8sMeta, { unitId: 1 }) };
}

const snapCommands = (cluster: FakeCluster): string[] => cluster.commands.filter((line) => line.includes(': snap '));

describe('k8s charm: where the snap comes from', () => {
  it('installs the resource .snap with --dangerous --classic, and holds it', async () => {
    const { cluster, ctx } = setup();
    const out = await ctx.run(ctx.on.install(), { relations: [PEER], resources: { 'snap-installation': files.snap } });
    expect(snapCommands(cluster)).toEqual(['node-1: snap install k8s_1.36_amd64.snap --dangerous --classic', 'node-1: snap refresh --hold k8s']);
    expect(out.workloadVersion).toBe('v1.36.0');
    expect(out.storedState['snap-source']).toMatch(/^file:\d+:\d+:[0-9a-f]{64}$/);
  });

  it('installs the one .snap of a tarball resource', async () => {
    const { cluster, ctx } = setup();
    await ctx.run(ctx.on.install(), { relations: [PEER], resources: { 'snap-installation': files.tarball } });
    expect(snapCommands(cluster)[0]).toBe('node-1: snap install k8s_1.36_amd64.snap --dangerous --classic');
  });

  it('prefers the resource over the channel', async () => {
    const { cluster, ctx } = setup();
    await ctx.run(ctx.on.install(), { relations: [PEER], config: { channel: '1.36/stable' }, resources: { 'snap-installation': files.snap } });
    expect(snapCommands(cluster)[0]).toBe('node-1: snap install k8s_1.36_amd64.snap --dangerous --classic');
  });

  it('installs from the channel when the resource is empty (Juju\'s "none uploaded")', async () => {
    const { cluster, ctx } = setup();
    const out = await ctx.run(ctx.on.install(), { relations: [PEER], config: { channel: '1.36/stable' }, resources: { 'snap-installation': files.empty } });
    expect(snapCommands(cluster)[0]).toBe('node-1: snap install k8s --classic --channel 1.36/stable');
    expect(out.storedState['snap-source']).toBe('channel:1.36/stable');
  });

  it('is Blocked, saying what to attach or set, with neither a resource nor a channel', async () => {
    const { cluster, ctx } = setup();
    const out = await ctx.run(ctx.on.install(), { relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: NO_SNAP_SOURCE_MESSAGE });
    expect(NO_SNAP_SOURCE_MESSAGE).toContain("'snap-installation' resource");
    expect(NO_SNAP_SOURCE_MESSAGE).toContain("'channel' option");
    expect(snapCommands(cluster)).toEqual([]);
  });

  it('is Blocked, naming the option, for a malformed channel', async () => {
    const { cluster, ctx } = setup();
    const out = await ctx.run(ctx.on.install(), { relations: [PEER], config: { channel: 'latest/nightly' } });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: "channel: 'latest/nightly' is not a snap channel such as 1.33/stable or latest/edge" });
    expect(snapCommands(cluster)).toEqual([]);
  });

  it.each([
    ['twoSnaps', 'snap-installation: the tarball holds 2 .snap files; it must hold exactly one (the k8s snap)'],
    ['noSnap', 'snap-installation: the tarball holds 0 .snap files; it must hold exactly one (the k8s snap)'],
    ['notAnArchive', 'snap-installation: is neither a .snap nor a tarball; upload the k8s .snap that `npm run snap` packs, or a tarball holding it'],
  ] as const)('is Blocked, naming the resource, for a %s resource', async (which, message) => {
    const { cluster, ctx } = setup();
    const out = await ctx.run(ctx.on.install(), { relations: [PEER], resources: { 'snap-installation': files[which] } });
    expect(out.unitStatus).toEqual({ status: 'blocked', message });
    expect(snapCommands(cluster)).toEqual([]);
  });

  it('installs a new resource over the running snap (attach-resource → upgrade-charm), and only then', async () => {
    const { cluster, ctx } = setup();
    const first = await ctx.run(ctx.on.install(), { relations: [PEER], resources: { 'snap-installation': files.snap } });
    await ctx.run(ctx.on.updateStatus(), first);
    expect(snapCommands(cluster).filter((line) => line.includes('install'))).toHaveLength(1);
    await ctx.run(ctx.on.upgradeCharm(), first);
    expect(snapCommands(cluster).filter((line) => line.includes('install'))).toHaveLength(1);
    const newer = path.join(files.dir, 'k8s_1.37_amd64.snap');
    writeFileSync(newer, 'hsqs, a newer squashfs image');
    const out = await ctx.run(ctx.on.upgradeCharm(), { ...first, resources: { 'snap-installation': newer } });
    expect(snapCommands(cluster).filter((line) => line.includes('install'))).toEqual([
      'node-1: snap install k8s_1.36_amd64.snap --dangerous --classic',
      'node-1: snap install k8s_1.37_amd64.snap --dangerous --classic',
    ]);
    expect(ctx.unitStatusHistory).toContainEqual({ status: 'maintenance', message: 'Installing the new k8s snap resource' });
    expect(out.storedState['snap-source']).not.toBe(first.storedState['snap-source']);
  });
});
