// cos-agent: the unit publishes a scrape job for its k8sd's metrics, with the bearer token and CA.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Context, findRelation } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sCharm } from '../src/charm.js';

const stateDir = mkdtempSync(path.join(tmpdir(), 'k8sd-state-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const PEER = { id: 1, endpoint: 'cluster' } as const;
const COS = { id: 5, endpoint: 'cos-agent', remoteApp: 'grafana-agent' } as const;

function leader(dir: string): { cluster: FakeCluster; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  machine.k8sdStateDir = dir;
  return { cluster, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

describe('k8s charm: cos-agent', () => {
  it('publishes a scrape job for k8sd with the bearer token, the CA and the node name to verify', async () => {
    writeFileSync(path.join(stateDir, 'metrics-token'), 'f00d\n', { mode: 0o600 });
    writeFileSync(path.join(stateDir, 'cluster.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const { ctx } = leader(stateDir);
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    const config = JSON.parse(findRelation(out, 'cos-agent')?.localUnitData?.config ?? '{}') as Record<string, unknown>;
    expect(config).toMatchObject({ metrics_alert_rules: {}, log_alert_rules: {}, dashboards: [], log_slots: [] });
    expect(config.metrics_scrape_jobs).toEqual([
      {
        job_name: 'k8sd-node-0',
        metrics_path: '/metrics',
        scheme: 'https',
        static_configs: [{ targets: ['192.0.2.0:6401'], labels: { node: 'node-0', 'juju-application': 'k8s' } }],
        authorization: { type: 'Bearer', credentials: 'f00d' },
        tls_config: { ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', server_name: 'node-0' },
      },
    ]);
    expect(ctx.jujuLog.some((log) => log.message.includes('f00d'))).toBe(false);
  });

  it('waits for the token when k8sd has not made it yet, and writes nothing', async () => {
    const { ctx } = leader(path.join(stateDir, 'missing'));
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: "Waiting for k8sd's metrics token" });
    expect(findRelation(out, 'cos-agent')?.localUnitData).toEqual({});
  });

  it('writes nothing without the relation', async () => {
    const { ctx } = leader(path.join(stateDir, 'missing'));
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });
});
