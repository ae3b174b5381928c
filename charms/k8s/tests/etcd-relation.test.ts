// The etcd relation: an external datastore at bootstrap, state in → state out against a fake cluster.
import { describe, expect, it } from 'vitest';
import { Context, findRelation, type RelationState, type State } from '../../runtime/src/testing/index.js';
import { FakeCluster, type FakeMachine } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sCharm } from '../src/charm.js';
import { ETCD_WAITING_MESSAGE, parseEtcdData } from '../src/etcd.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;
const CA = '-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----';
const KEY = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQ\n-----END EC PRIVATE KEY-----';
const PUBLISHED = { connection_string: 'https://10.0.0.5:2379,https://10.0.0.6:2379', client_ca: CA, client_cert: CERT, client_key: KEY };

function etcdRelation(data: Record<string, string>, id = 7): RelationState {
  return { id, endpoint: 'etcd', remoteApp: 'etcd', remoteUnitsData: { 0: data, 1: {} } };
}

function leader(): { cluster: FakeCluster; machine: FakeMachine; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  return { cluster, machine, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

describe('k8s charm: etcd relation before bootstrap', () => {
  it('bootstraps with the external etcd the relation names, and records it', async () => {
    const { cluster, ctx } = leader();
    const etcd = etcdRelation(PUBLISHED);
    const out = await ctx.run(ctx.on.relationChanged(etcd, { remoteUnit: 0 }), { leader: true, relations: [PEER, etcd] });
    expect(cluster.bootstrapDocument).toMatchObject({
      'datastore-type': 'external',
      'datastore-servers': ['https://10.0.0.5:2379', 'https://10.0.0.6:2379'],
      'datastore-ca-crt': `${CA}\n`,
      'datastore-client-crt': `${CERT}\n`,
      'datastore-client-key': `${KEY}\n`,
    });
    expect(findRelation(out, 'cluster')?.localAppData?.datastore).toBe('external');
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it("also with bootstrap-datastore 'etcd'", async () => {
    const { cluster, ctx } = leader();
    await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'bootstrap-datastore': 'etcd' }, relations: [PEER, etcdRelation(PUBLISHED)] });
    expect(cluster.bootstrapDocument?.['datastore-type']).toBe('external');
  });

  it('waits, without bootstrapping, until etcd has published all four keys', async () => {
    const { cluster, ctx } = leader();
    const { client_key: _dropped, ...partial } = PUBLISHED;
    const etcd = etcdRelation(partial);
    const out = await ctx.run(ctx.on.relationChanged(etcd, { remoteUnit: 0 }), { leader: true, relations: [PEER, etcd] });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: ETCD_WAITING_MESSAGE });
    expect(ETCD_WAITING_MESSAGE).toBe('Waiting for etcd to publish connection_string, client_ca, client_cert, client_key');
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it('is Blocked, naming the key, for data k8s cannot use', async () => {
    const { cluster, ctx } = leader();
    const http = await ctx.run(ctx.on.configChanged(), { leader: true, relations: [PEER, etcdRelation({ ...PUBLISHED, connection_string: 'http://10.0.0.5:2379' })] });
    expect(http.unitStatus).toEqual({ status: 'blocked', message: "etcd relation: connection_string 'http://10.0.0.5:2379' must use https:// (k8s uses client certificates)" });
    const badKey = await ctx.run(ctx.on.configChanged(), { leader: true, relations: [PEER, etcdRelation({ ...PUBLISHED, client_key: 'not a key' })] });
    expect(badKey.unitStatus).toEqual({ status: 'blocked', message: 'etcd relation: client_key is not a PEM private key' });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it("is Blocked when bootstrap-datastore is 'etcd' and nothing is related", async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'bootstrap-datastore': 'etcd' }, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: "Missing etcd relation: bootstrap-datastore 'etcd' needs `juju integrate k8s:etcd etcd`" });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it("is Blocked when bootstrap-datastore is 'managed-etcd' and etcd is related", async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.configChanged(), {
      leader: true,
      config: { 'bootstrap-datastore': 'managed-etcd' },
      relations: [PEER, etcdRelation(PUBLISHED)],
    });
    expect(out.unitStatus).toEqual({
      status: 'blocked',
      message: "bootstrap-datastore is 'managed-etcd' but the etcd integration exists: remove the integration or set bootstrap-datastore to 'etcd'",
    });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it('bootstraps managed etcd with managed-etcd and no relation', async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'bootstrap-datastore': 'managed-etcd' }, relations: [PEER] });
    expect(cluster.bootstrapDocument?.['datastore-type']).toBe('etcd');
    expect(findRelation(out, 'cluster')?.localAppData?.datastore).toBe('managed');
  });

  it('refuses an unknown bootstrap-datastore, naming the option', async () => {
    const { ctx } = leader();
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'bootstrap-datastore': 'dqlite' }, relations: [PEER] });
    expect(out.unitStatus).toEqual({
      status: 'blocked',
      message: "bootstrap-datastore: 'dqlite' is not '' (managed etcd, or the related etcd), 'managed-etcd' or 'etcd'",
    });
  });
});

describe('k8s charm: etcd relation after bootstrap', () => {
  async function bootstrapped(relations: RelationState[]): Promise<{ ctx: Context; state: State; cluster: FakeCluster }> {
    const { cluster, ctx } = leader();
    const state = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, ...relations] });
    return { ctx, state, cluster };
  }

  it('is Blocked when etcd is related to a cluster on managed etcd, and recovers when removed', async () => {
    const { ctx, state } = await bootstrapped([]);
    expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    const etcd = etcdRelation(PUBLISHED);
    const related = await ctx.run(ctx.on.relationCreated(etcd), { ...state, relations: [...state.relations, etcd] });
    expect(related.unitStatus).toEqual({
      status: 'blocked',
      message: 'etcd integration added after bootstrap: this cluster runs managed etcd and cannot move to an external one; remove the etcd integration',
    });
    const removed = await ctx.run(ctx.on.configChanged(), { ...related, relations: related.relations.filter((r) => r.endpoint !== 'etcd') });
    expect(removed.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('is Blocked when the etcd a cluster runs on is no longer related', async () => {
    const { ctx, state, cluster } = await bootstrapped([etcdRelation(PUBLISHED)]);
    expect(cluster.bootstrapDocument?.['datastore-type']).toBe('external');
    const out = await ctx.run(ctx.on.configChanged(), { ...state, relations: state.relations.filter((r) => r.endpoint !== 'etcd') });
    expect(out.unitStatus).toEqual({
      status: 'blocked',
      message: 'Missing etcd relation: this cluster stores its data in the external etcd; restore the etcd integration',
    });
  });
});

describe('etcd relation data', () => {
  it('is incomplete until every key is there, and names a key it cannot use', () => {
    expect(parseEtcdData({ connection_string: 'https://10.0.0.5:2379' })).toBeUndefined();
    expect(() => parseEtcdData({ ...PUBLISHED, connection_string: 'https://10.0.0.5:2379,:::' })).toThrow("etcd relation: connection_string ':::' is not a URL");
    expect(() => parseEtcdData({ ...PUBLISHED, client_ca: KEY })).toThrow('etcd relation: client_ca is not a PEM certificate');
  });
});
