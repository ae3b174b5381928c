// containerd-custom-registries: validation that names the entry and field, the hosts.d files, and
// the containerd relation from the k8s leader to k8s-worker units. State in → state out.
import { mkdtempSync, readFileSync, statSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Context, findRelation, type RelationState } from '../../runtime/src/testing/index.js';
import { FakeCluster } from './fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta, workerMeta } from './scenario-helpers.js';
import { k8sCharm } from '../../k8s/src/charm.js';
import { k8sWorkerCharm } from '../../k8s-worker/src/charm.js';
import { hostFiles, parseCustomRegistries } from '../src/registries.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const CA = '-----BEGIN CERTIFICATE-----\nMIIBregistryca\n-----END CERTIFICATE-----\n';
const REGISTRIES = [
  { url: 'https://mirror.example.com:5000', host: 'docker.io', username: 'puller', password: 's3cret', ca_file: b64(CA) },
  { url: 'http://10.0.0.9:5000', skip_verify: true },
];
const PEER = { id: 1, endpoint: 'cluster' } as const;

function option(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

describe('containerd-custom-registries validation', () => {
  const refused: Array<[string, unknown, string]> = [
    ['not JSON', '[{', 'containerd-custom-registries: is not JSON; give a list such as [{"url": "https://registry.example.com", "host": "docker.io"}]'],
    ['not a list', { url: 'https://a' }, 'containerd-custom-registries: must be a JSON list of registries'],
    ['no url', [{ host: 'docker.io' }], 'containerd-custom-registries: [0].url is required'],
    ['bad scheme', [{ url: 'ftp://r.example.com' }], "containerd-custom-registries: [0].url 'ftp://r.example.com' must be http:// or https://"],
    ['unknown field', [{ url: 'https://a.example.com', pasword: 'x' }], 'containerd-custom-registries: [0].pasword is not a known field'],
    ['bad host', [{ url: 'https://a.example.com', host: '../etc' }], "containerd-custom-registries: [0].host '../etc' is not a registry host"],
    ['duplicate host', [{ url: 'https://a.example.com' }, { url: 'https://a.example.com/v2' }], "containerd-custom-registries: [1].host 'a.example.com' is listed twice"],
    ['password alone', [{ url: 'https://a.example.com', password: 'x' }], 'containerd-custom-registries: [0].username is required with password'],
    ['not base64 PEM', [{ url: 'https://a.example.com', ca_file: b64('hello') }], 'containerd-custom-registries: [0].ca_file must be a base64-encoded PEM file'],
    ['cert without key', [{ url: 'https://a.example.com', cert_file: b64(CA) }], 'containerd-custom-registries: [0].key_file is required with cert_file'],
    ['skip_verify a string', [{ url: 'https://a.example.com', skip_verify: 'yes' }], 'containerd-custom-registries: [0].skip_verify must be true or false'],
  ];
  it.each(refused)('refuses %s, naming the field', (_what, value, message) => {
    expect(() => parseCustomRegistries('containerd-custom-registries', option(value))).toThrow(message);
  });

  it('takes the host from the url when none is given', () => {
    expect(parseCustomRegistries('o', option(REGISTRIES))).toEqual([
      { url: 'https://mirror.example.com:5000', host: 'docker.io', username: 'puller', password: 's3cret', ca_file: b64(CA) },
      { url: 'http://10.0.0.9:5000', host: '10.0.0.9:5000', skip_verify: true },
    ]);
  });

  it('writes a hosts.toml containerd reads, with the credentials as an Authorization header', () => {
    const [mirror] = parseCustomRegistries('o', option(REGISTRIES));
    const { files } = hostFiles(mirror!, '/etc/containerd/hosts.d/docker.io');
    expect(files['ca.crt']).toBe(CA);
    expect(files['hosts.toml']).toBe(
      [
        '# Written by the k8s charm from containerd-custom-registries; changes here are overwritten.',
        'server = "https://mirror.example.com:5000"',
        '',
        '[host."https://mirror.example.com:5000"]',
        'capabilities = ["pull", "resolve"]',
        'ca = "/etc/containerd/hosts.d/docker.io/ca.crt"',
        '',
        '[host."https://mirror.example.com:5000".header]',
        `Authorization = ["Basic ${b64('puller:s3cret')}"]`,
        '',
      ].join('\n'),
    );
  });
});

function controlPlane(hostsDir: string): { cluster: FakeCluster; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  machine.containerdHostsDir = hostsDir;
  return { cluster, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

describe('k8s charm: containerd registries', () => {
  it('blocks on a bad option, naming it, without bootstrapping or writing anything', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hosts.d-'));
    const { cluster, ctx } = controlPlane(dir);
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'containerd-custom-registries': '[{"url": "ftp://x"}]' }, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: "containerd-custom-registries: [0].url 'ftp://x' must be http:// or https://" });
    expect(cluster.bootstrapDocument).toBeUndefined();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('the leader publishes the list on containerd and writes hosts.d entries 0600; a removed entry is removed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hosts.d-'));
    const { ctx } = controlPlane(dir);
    const containerd: RelationState = { id: 4, endpoint: 'containerd', remoteApp: 'k8s-worker' };
    const out = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'containerd-custom-registries': option(REGISTRIES) }, relations: [PEER, containerd] });
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(JSON.parse(findRelation(out, 'containerd')?.localAppData?.['custom-registries'] ?? '')).toEqual(parseCustomRegistries('o', option(REGISTRIES)));
    expect(readdirSync(dir).sort()).toEqual(['10.0.0.9:5000', 'docker.io']);
    for (const file of ['docker.io/hosts.toml', 'docker.io/ca.crt', '10.0.0.9:5000/hosts.toml']) {
      expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    }
    expect(readFileSync(path.join(dir, '10.0.0.9:5000/hosts.toml'), 'utf8')).toContain('skip_verify = true');

    const fewer = await ctx.run(ctx.on.configChanged(), { ...out, config: { 'containerd-custom-registries': option([REGISTRIES[1]]) } });
    expect(readdirSync(dir)).toEqual(['10.0.0.9:5000']);
    expect(JSON.parse(findRelation(fewer, 'containerd')?.localAppData?.['custom-registries'] ?? '')).toHaveLength(1);
  });
});

describe('k8s-worker charm: containerd relation', () => {
  function worker(hostsDir: string): Context {
    const cluster = new FakeCluster();
    cluster.members.set('node-0', { role: 'control-plane', address: '192.0.2.0' });
    const machine = cluster.machine('w-0');
    machine.snap = { ...INSTALLED_SNAP };
    machine.containerdHostsDir = hostsDir;
    cluster.members.set('w-0', { role: 'worker', address: '192.0.2.0' });
    return new Context(k8sWorkerCharm(machine.deps()), workerMeta, { appName: 'k8s-worker' });
  }
  const clusterRelation: RelationState = { id: 2, endpoint: 'cluster', remoteApp: 'k8s', localUnitData: { joined: 'k8s-000000000000' } };

  it('writes what the k8s leader shares', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hosts.d-'));
    const containerd: RelationState = {
      id: 3, endpoint: 'containerd', remoteApp: 'k8s',
      remoteAppData: { 'custom-registries': JSON.stringify(parseCustomRegistries('o', option(REGISTRIES))) },
    };
    const ctx = worker(dir);
    await ctx.run(ctx.on.relationChanged(containerd), { relations: [clusterRelation, containerd] });
    expect(readFileSync(path.join(dir, 'docker.io/hosts.toml'), 'utf8')).toContain('server = "https://mirror.example.com:5000"');
    expect(existsSync(path.join(dir, '10.0.0.9:5000/hosts.toml'))).toBe(true);
  });

  it('blocks, naming the relation key, on data it cannot use', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hosts.d-'));
    const containerd: RelationState = { id: 3, endpoint: 'containerd', remoteApp: 'k8s', remoteAppData: { 'custom-registries': '{"url": 1}' } };
    const ctx = worker(dir);
    const out = await ctx.run(ctx.on.relationChanged(containerd), { relations: [clusterRelation, containerd] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'containerd relation custom-registries: must be a JSON list of registries' });
    expect(readdirSync(dir)).toEqual([]);
  });
});
