// cos-agent on the k8s charm: scrape jobs for k8sd, etcd, kube-apiserver and the kubelet, with the
// credentials each needs; the leader's least-privilege ServiceAccount token in a Juju secret; the
// alert rules and dashboards.
import { execaSync } from 'execa';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Context, findRelation, type State } from '../../runtime/src/testing/index.js';
import { FakeCluster, type FakeMachine } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta, onlySecret } from '../../k8s-common/tests/scenario-helpers.js';
import { SCRAPER_TOKEN_LIFETIME_S } from '../../k8s-common/src/cos.js';
import { k8sCharm } from '../src/charm.js';

const stateDir = mkdtempSync(path.join(tmpdir(), 'k8sd-state-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));
writeFileSync(path.join(stateDir, 'metrics-token'), 'f00d\n', { mode: 0o600 });
writeFileSync(path.join(stateDir, 'cluster.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');

const APISERVER_CA = '-----BEGIN CERTIFICATE-----\nAPISERVER-CA\n-----END CERTIFICATE-----\n';
const KUBELET_CA = '-----BEGIN CERTIFICATE-----\nKUBELET-CA\n-----END CERTIFICATE-----\n';
const pkiDir = path.join(stateDir, 'pki');
const pkiDirWithoutKubeletCa = path.join(stateDir, 'pki-without-kubelet-ca');
for (const dir of [pkiDir, pkiDirWithoutKubeletCa]) mkdirSync(dir);
writeFileSync(path.join(pkiDir, 'ca.crt'), APISERVER_CA);
writeFileSync(path.join(pkiDir, 'kubelet-ca.crt'), KUBELET_CA);
writeFileSync(path.join(pkiDirWithoutKubeletCa, 'ca.crt'), APISERVER_CA);

const PEER = { id: 1, endpoint: 'cluster' } as const;
const COS = { id: 5, endpoint: 'cos-agent', remoteApp: 'grafana-agent' } as const;
const K8SD_CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function leader(dir: string = stateDir, services?: string[], pki: string = pkiDir): { cluster: FakeCluster; machine: FakeMachine; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  machine.k8sdStateDir = dir;
  machine.pkiDir = pki;
  machine.services = services;
  return { cluster, machine, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

type Job = { job_name: string; authorization?: { credentials: string } };

function cosConfig(out: State): { metrics_scrape_jobs: Job[]; metrics_alert_rules: { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string }> }> }; dashboards: string[] } {
  return JSON.parse(findRelation(out, 'cos-agent')?.localUnitData?.config ?? '{}') as ReturnType<typeof cosConfig>;
}

describe('k8s charm: cos-agent', () => {
  it('publishes jobs for k8sd, etcd (loopback, no credential), kube-apiserver and the kubelet, with the scraper token and the CAs', async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    const jobs = cosConfig(out).metrics_scrape_jobs;
    const labels = (component: string): Record<string, string> => ({ node: 'node-0', 'juju-application': 'k8s', component });
    expect(jobs).toEqual([
      {
        job_name: 'k8sd-node-0',
        metrics_path: '/metrics',
        scheme: 'https',
        static_configs: [{ targets: ['192.0.2.0:6401'], labels: labels('k8sd') }],
        authorization: { type: 'Bearer', credentials: 'f00d' },
        // k8sd serves its cluster identity certificate, issued for the node's host name.
        tls_config: { ca: K8SD_CA, server_name: 'node-0' },
      },
      { job_name: 'etcd-node-0', metrics_path: '/metrics', scheme: 'http', static_configs: [{ targets: ['127.0.0.1:2381'], labels: labels('etcd') }] },
      {
        job_name: 'kube-apiserver-node-0',
        metrics_path: '/metrics',
        scheme: 'https',
        static_configs: [{ targets: ['192.0.2.0:6443'], labels: labels('kube-apiserver') }],
        authorization: { type: 'Bearer', credentials: 'sa-token-1' },
        tls_config: { ca: APISERVER_CA },
      },
      {
        job_name: 'kubelet-node-0',
        metrics_path: '/metrics',
        scheme: 'https',
        static_configs: [{ targets: ['192.0.2.0:10250'], labels: labels('kubelet') }],
        authorization: { type: 'Bearer', credentials: 'sa-token-1' },
        tls_config: { ca: KUBELET_CA },
      },
      {
        job_name: 'kubelet-cadvisor-node-0',
        metrics_path: '/metrics/cadvisor',
        scheme: 'https',
        static_configs: [{ targets: ['192.0.2.0:10250'], labels: labels('kubelet') }],
        authorization: { type: 'Bearer', credentials: 'sa-token-1' },
        tls_config: { ca: KUBELET_CA },
      },
    ]);
    expect(cluster.serviceAccountTokens).toEqual([{ account: 'kube-system/cos-scraper', durationSeconds: SCRAPER_TOKEN_LIFETIME_S, token: 'sa-token-1' }]);
    for (const secret of ['f00d', 'sa-token-1']) {
      expect(ctx.jujuLog.some((log) => log.message.includes(secret)), secret).toBe(false);
      expect(cluster.commands.some((command) => command.includes(secret)), secret).toBe(false);
    }
  });

  it('binds the token to a role that can only read metrics', async () => {
    const { cluster, ctx } = leader();
    await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    const [manifest] = cluster.applied as Array<{ items: Array<Record<string, unknown>> }>;
    const byKind = Object.fromEntries((manifest?.items ?? []).map((item) => [item.kind, item]));
    expect(byKind.ServiceAccount).toEqual({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'cos-scraper', namespace: 'kube-system' } });
    expect(byKind.ClusterRole).toMatchObject({
      rules: [
        { nonResourceURLs: ['/metrics', '/metrics/slis'], verbs: ['get'] },
        { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
      ],
    });
    expect(byKind.ClusterRoleBinding).toMatchObject({
      roleRef: { kind: 'ClusterRole', name: 'k8s-charm:cos-scraper' },
      subjects: [{ kind: 'ServiceAccount', name: 'cos-scraper', namespace: 'kube-system' }],
    });
  });

  it('keeps the token in an application secret whose ID, and the CAs from its PKI directory, its peers read from the peer bag', async () => {
    const { ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    const secret = onlySecret(out);
    expect(secret).toMatchObject({ owner: 'app', label: 'cos-scrape-token', revisions: { 1: { token: 'sa-token-1' } } });
    const expires = Date.parse(secret.revisions[1]?.expires ?? '');
    expect(expires - Date.now()).toBeGreaterThan((SCRAPER_TOKEN_LIFETIME_S - 60) * 1000);
    expect(findRelation(out, 'cluster')?.localAppData).toMatchObject({
      'cos-scrape-secret-id': secret.id,
      'cos-apiserver-ca': APISERVER_CA,
      'cos-kubelet-ca': KUBELET_CA,
    });
  });

  it('reuses a fresh token and renews one that has less than 10 days left, as a new revision', async () => {
    const { cluster, ctx } = leader();
    const first = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    const again = await ctx.run(ctx.on.updateStatus(), first);
    expect(cluster.serviceAccountTokens).toHaveLength(1);
    const secret = onlySecret(again);
    const ageing = { ...secret, revisions: { 1: { token: 'sa-token-1', expires: new Date(Date.now() + 9 * 24 * 3600 * 1000).toISOString() } } };
    const renewed = await ctx.run(ctx.on.updateStatus(), { ...again, secrets: [ageing] });
    expect(cluster.serviceAccountTokens).toHaveLength(2);
    expect(onlySecret(renewed).revisions[2]).toMatchObject({ token: 'sa-token-2' });
    expect(cosConfig(renewed).metrics_scrape_jobs.find((job) => job.job_name === 'kube-apiserver-node-0')?.authorization?.credentials).toBe('sa-token-2');
  });

  it('mints no token while no unit has a cos-agent relation', async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(out.secrets).toEqual([]);
    expect(cluster.serviceAccountTokens).toEqual([]);
  });

  it('mints the token for a peer that asks for it (cos-scrape=wanted in its unit bag)', async () => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [{ ...PEER, remoteUnitsData: { 1: { 'cos-scrape': 'wanted' } } }] });
    expect(cluster.serviceAccountTokens).toHaveLength(1);
    expect(findRelation(out, 'cluster')?.localAppData?.['cos-scrape-secret-id']).toBe(onlySecret(out).id);
  });

  it('leaves the kubelet jobs out on a node without a kubelet, and without a kubelet CA to hand out', async () => {
    const noKubelet = leader(stateDir, ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
    const out = await noKubelet.ctx.run(noKubelet.ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(cosConfig(out).metrics_scrape_jobs.map((job) => job.job_name)).toEqual(['k8sd-node-0', 'etcd-node-0', 'kube-apiserver-node-0']);

    const noCa = leader(stateDir, undefined, pkiDirWithoutKubeletCa);
    const out2 = await noCa.ctx.run(noCa.ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(cosConfig(out2).metrics_scrape_jobs.map((job) => job.job_name)).toEqual(['k8sd-node-0', 'etcd-node-0', 'kube-apiserver-node-0']);
    expect(findRelation(out2, 'cluster')?.localAppData?.['cos-kubelet-ca']).toBeUndefined();
  });

  it('ships alert rules for the components and certificate expiry, and a dashboard grafana-agent can decode (base64 of xz)', async () => {
    const { ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    const config = cosConfig(out);
    const alerts = config.metrics_alert_rules.groups.flatMap((group) => group.rules.map((rule) => rule.alert));
    expect(alerts).toEqual(expect.arrayContaining(['KubeAPIServerDown', 'EtcdNoLeader', 'KubeletDown', 'KubernetesCertificateExpiringSoon']));
    expect(config.metrics_alert_rules.groups.flatMap((group) => group.rules).find((rule) => rule.alert === 'KubernetesCertificateExpiringSoon')?.expr).toContain('k8sd_certificate_expiry_seconds');
    expect(config.dashboards).toHaveLength(1);
    const decoded = execaSync('xz', ['--decompress', '--stdout'], { input: Buffer.from(config.dashboards[0] ?? '', 'base64'), encoding: 'utf8' }).stdout;
    const dashboard = JSON.parse(decoded) as { uid: string; panels: Array<{ targets: Array<{ expr: string }> }> };
    expect(dashboard.uid).toBe('k8s-ts-overview');
    expect(dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)).join(' ')).toContain('etcd_server_has_leader');
  });

  it('waits for the k8sd token when k8sd has not made it yet, and writes nothing', async () => {
    const { ctx } = leader(path.join(stateDir, 'missing'));
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: "Waiting for k8sd's metrics token" });
    expect(findRelation(out, 'cos-agent')?.localUnitData).toEqual({});
  });

  it('a token that cannot be minted leaves the unit Waiting, with k8sd and etcd still published', async () => {
    const { ctx, machine } = leader();
    machine.createServiceAccountToken = async () => {
      throw new Error('serviceaccounts "cos-scraper" is forbidden');
    };
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER, COS] });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Waiting to mint the cos-agent scrape token' });
    expect(cosConfig(out).metrics_scrape_jobs.map((job) => job.job_name)).toEqual(['k8sd-node-0', 'etcd-node-0']);
  });
});
