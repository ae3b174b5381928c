// One key style in the CLI's JSON and YAML (issue 14 item 5): kebab-case, as CK8s's `k8s status`.
// The test walks every reply type of the local API (what `--output-format json` prints) with the
// TypeScript checker and checks that each field name comes out in kebab-case.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { local } from '../../src/api/index.js';
import type { ResponseOf } from '../../src/api/index.js';
import { K8sCommand } from '../../src/cli/base.js';
import { kebabKey, kebabKeys } from '../../src/cli/output-keys.js';
import { collectInspection, type InspectClient } from '../../src/inspect/collect.js';
import { Layout } from '../../src/layout.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Every field name reachable from `roots`, as "Type.path.field" → name (maps keyed by data are walked for their values only). */
function fieldNames(checker: ts.TypeChecker, roots: Array<[string, ts.Type]>): Map<string, string> {
  const names = new Map<string, string>();
  const seen = new Set<ts.Type>();
  const walk = (type: ts.Type, where: string): void => {
    if (seen.has(type)) return;
    seen.add(type);
    if (type.isUnion() || type.isIntersection()) return type.types.forEach((t) => walk(t, where));
    if (checker.isArrayType(type)) return checker.getTypeArguments(type as ts.TypeReference).forEach((t) => walk(t, `${where}[]`));
    if (!(type.flags & ts.TypeFlags.Object)) return;
    const index = checker.getIndexInfosOfType(type);
    index.forEach((i) => walk(i.type, `${where}{}`));
    for (const prop of checker.getPropertiesOfType(type)) {
      const decl = prop.valueDeclaration ?? prop.declarations?.[0];
      if (!decl || decl.getSourceFile().fileName.includes('node_modules')) continue;
      names.set(`${where}.${prop.name}`, prop.name);
      walk(checker.getTypeOfSymbolAtLocation(prop, decl), `${where}.${prop.name}`);
    }
  };
  for (const [name, type] of roots) walk(type, name);
  return names;
}

describe('field names of the JSON the CLI prints', () => {
  it('every reply type of the local API, the encryption status and the cleanup report come out in kebab-case', () => {
    const files = ['src/api/local.ts', 'src/security/encryption.ts', 'src/host/cleanup.ts'].map((f) => path.join(ROOT, f));
    const program = ts.createProgram(files, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, skipLibCheck: true });
    const checker = program.getTypeChecker();
    const roots: Array<[string, ts.Type]> = [];
    const [localApi, encryption, cleanup] = files.map((f) => checker.getSymbolAtLocation(program.getSourceFile(f)!)!);
    for (const sym of checker.getExportsOfModule(localApi)) {
      const type = checker.getTypeOfSymbol(sym);
      const response = type.getProperty('response');
      if (response) roots.push([sym.name, checker.getNonNullableType(checker.getTypeOfSymbol(response))]);
    }
    for (const [mod, name] of [[encryption, 'SecretsEncryptionStatus'], [cleanup, 'CleanupReport']] as const) {
      roots.push([name, checker.getDeclaredTypeOfSymbol(checker.getExportsOfModule(mod).find((s) => s.name === name)!)]);
    }
    expect(roots.map(([n]) => n)).toEqual(expect.arrayContaining(['clusterStatus', 'certsStatus', 'listTokens', 'issueToken', 'saveSnapshot', 'restoreSnapshot', 'encryptionStatus', 'SecretsEncryptionStatus', 'CleanupReport']));

    const names = fieldNames(checker, roots);
    expect(names.get('clusterStatus.node-name')).toBe('node-name');
    expect(names.get('listTokens.tokens[].expiresAt')).toBe('expiresAt');
    const notKebab = [...names].filter(([, name]) => !KEBAB.test(kebabKey(name))).map(([where, name]) => `${where} → ${kebabKey(name)}`);
    expect(notKebab).toEqual([]);
  });

  it('camelCase field names become kebab-case; kebab-case ones (the CK8s names) stay; snake_case is not hidden', () => {
    expect(kebabKey('writeKeyId')).toBe('write-key-id');
    expect(kebabKey('peerURLs')).toBe('peer-urls');
    expect(kebabKey('extraSANs')).toBe('extra-sans');
    expect(kebabKey('node-name')).toBe('node-name');
    expect(kebabKey('ready')).toBe('ready');
    expect(KEBAB.test(kebabKey('write_key_id'))).toBe(false);
  });

  it('at every depth, but not the keys of maps keyed by data (component and CA names)', () => {
    const status = {
      'node-name': 'cp1',
      datastore: { members: [{ name: 'cp1', isLearner: false }] },
      versions: { kubeApiserver: 'v1.33.0' },
      fips: { requestedBy: ['K8S_FIPS'], goModules: { etcd: 'v1.0.0' } },
    };
    expect(kebabKeys(status)).toEqual({
      'node-name': 'cp1',
      datastore: { members: [{ name: 'cp1', 'is-learner': false }] },
      versions: { kubeApiserver: 'v1.33.0' },
      fips: { 'requested-by': ['K8S_FIPS'], 'go-modules': { etcd: 'v1.0.0' } },
    });
  });
});

describe('K8sCommand.render', () => {
  afterEach(() => vi.restoreAllMocks());

  class Echo extends K8sCommand {
    static data: unknown;
    static keys: 'kebab' | 'as-is' = 'kebab';
    async run(): Promise<void> {
      await this.render(Echo.data, this.argv[0] as 'json' | 'yaml', () => 'plain', Echo.keys);
    }
  }
  const printed = async (format: string): Promise<string> => {
    const out: string[] = [];
    // oclif's this.log prints with console.log.
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void out.push(String(line)));
    await Echo.run([format], ROOT);
    vi.restoreAllMocks();
    return out.join('\n');
  };

  it('prints JSON and YAML with kebab-case keys', async () => {
    Echo.data = { tokens: [{ name: 'w1', expiresAt: '2026-01-01T00:00:00Z' }] };
    Echo.keys = 'kebab';
    expect(JSON.parse(await printed('json'))).toEqual({ tokens: [{ name: 'w1', 'expires-at': '2026-01-01T00:00:00Z' }] });
    expect(await printed('yaml')).toContain('expires-at: ');
  });

  it('leaves Canonical Kubernetes setting names as they are (k8s get / k8s set)', async () => {
    Echo.data = { 'dns.cluster-domain': 'cluster.local', 'load-balancer.l2Interfaces': ['eth0'] };
    Echo.keys = 'as-is';
    expect(JSON.parse(await printed('json'))).toEqual(Echo.data);
  });
});

describe('the JSON files of a k8s inspect bundle', () => {
  /** Field names that are not kebab-case, by path; the keys of maps keyed by data (names, file paths, setting names) are not field names. */
  const notKebab = (value: unknown, where: string, out: string[]): string[] => {
    if (Array.isArray(value)) value.forEach((v) => notKebab(v, `${where}[]`, out));
    else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if (!KEBAB.test(k)) out.push(`${where}.${k}`);
        if (!['versions', 'go-modules', 'cas', 'errors', 'settings'].includes(k)) notKebab(v, `${where}.${k}`, out);
      }
    }
    return out;
  };

  type Endpoint = Parameters<InspectClient['call']>[0];

  it('are keyed in kebab-case, k8sd views as --output-format json prints them', async () => {
    const replies = new Map<Endpoint, unknown>([
      [local.services, { services: [{ name: 'kubelet', state: 'running', restarts: 0, lastExit: 'none' }] }],
      [local.certsStatus, { certificates: [{ name: 'apiserver', expiresAt: '2027-01-01T00:00:00Z', daysLeft: 365, caName: 'ca' }] }],
      [local.features, { features: [{ name: 'dns', enabled: true, updatedAt: '2026-01-01T00:00:00Z' }] }],
      [local.encryptionStatus, { provider: 'kms', writeKeyId: 'k1', cluster: { keysAgree: true } }],
      [local.datastore, { members: [{ name: 'cp-1', isLearner: false, clientURLs: ['https://10.0.0.5:2379'] }], health: [{ endpoint: 'https://10.0.0.5:2379', healthy: true }] }],
    ]);
    const client: InspectClient = {
      node: async () => ({ clustered: true, name: 'cp-1', address: '10.0.0.5', role: 'control-plane' }) as Awaited<ReturnType<InspectClient['node']>>,
      status: async () => ({ 'node-name': 'cp-1', versions: { kubeApiserver: 'v1.33.0' }, fips: { enabled: false, requestedBy: [] } }) as unknown as Awaited<ReturnType<InspectClient['status']>>,
      getClusterConfig: async () => ({ settings: { 'dns.cluster-domain': 'cluster.local', 'load-balancer.l2Interfaces': ['eth0'] } }),
      call: async <E extends Endpoint>(endpoint: E) => replies.get(endpoint) as ResponseOf<E>,
    };
    const dir = mkdtempSync(path.join(os.tmpdir(), 'inspect-keys-'));
    try {
      const bundle = path.join(dir, 'bundle.tar.gz');
      const result = await collectInspection(new Layout({ K8S_ROOT: path.join(dir, 'root') }), client, bundle);
      execFileSync('tar', ['-C', dir, '-xzf', bundle]);
      const top = path.join(dir, 'bundle');
      const jsonFiles = result.entries.filter((e) => e.endsWith('.json'));
      expect(jsonFiles).toEqual(expect.arrayContaining(['k8s/status.json', 'k8s/certs-status.json', 'etcd/members-and-health.json', 'host.json', 'manifest.json']));
      expect(readdirSync(top)).toContain('manifest.json');
      const read = (f: string): unknown => JSON.parse(readFileSync(path.join(top, f), 'utf8'));
      expect(jsonFiles.flatMap((f) => notKebab(read(f), f, []))).toEqual([]);
      expect(read('etcd/members-and-health.json')).toMatchObject({ members: [{ 'is-learner': false, 'client-urls': ['https://10.0.0.5:2379'] }] });
      expect(read('k8s/status.json')).toMatchObject({ versions: { kubeApiserver: 'v1.33.0' }, fips: { 'requested-by': [] } });
      expect(read('k8s/cluster-config.json')).toEqual({ settings: { 'dns.cluster-domain': 'cluster.local', 'load-balancer.l2Interfaces': ['eth0'] } });
      expect(read('host.json')).toHaveProperty('cgroup-version');
      expect(read('manifest.json')).toHaveProperty('never-included');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
