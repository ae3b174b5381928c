// `k8s inspect`: a diagnostics bundle (tar.gz) of one node. It holds k8sd's views (status,
// certificate expiry, features, cluster settings, encryption-at-rest status by key id, etcd
// members and health, service states), every service's args file and the tail of its log, the
// Kubernetes API's view of nodes, pods and events in every namespace, and the host facts.
//
// It never holds a private key, a token, a kubeconfig's credentials or Secret data. By
// construction: no key, token, kubeconfig or encryption-config file is ever read; Secrets are
// never listed; certificates are described by k8sd, not copied. And as a second line of defence
// every text goes through ./redact.ts before it is written.
//
// Its JSON files are keyed in kebab-case like every JSON output of the CLI (k8sd's views as
// `--output-format json` prints them; cluster-config.json keeps the setting names of `k8s get`),
// except kubernetes/*.json: those are the Kubernetes API's own objects, as kubectl prints them.
import { closeSync, openSync, readSync, chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { local } from '../api/index.js';
import type { K8sdClient } from '../client/index.js';
import { kebabKeys } from '../cli/output-keys.js';
import { hostCgroupVersion } from '../host/host.js';
import type { Layout } from '../layout.js';
import { coreApi } from '../k8sd/kube.js';
import { redact, REDACTION_RULES } from './redact.js';

export const LOG_LINES = 500;
export const K8SD_LOG_LINES = 5000;

export class InspectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InspectError';
  }
}

/** What the bundle asks of k8sd. */
export type InspectClient = Pick<K8sdClient, 'status' | 'node' | 'call' | 'getClusterConfig'>;

export interface InspectResult {
  file: string;
  entries: string[];
  /** Items that could not be collected, with why (the bundle is still written). */
  errors: Record<string, string>;
}

/** The last `lines` lines of a text file, read from its end (logs can be large). */
function tail(file: string, lines: number): string {
  const size = statSync(file).size;
  const want = Math.min(size, lines * 400 + 65_536);
  const buf = Buffer.alloc(want);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, want, size - want);
  } finally {
    closeSync(fd);
  }
  const all = buf.toString('utf8').split('\n');
  return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
}

/** Kubernetes objects without the noise that makes a bundle big (managedFields). */
function slim<T extends { items?: Array<{ metadata?: { managedFields?: unknown } }> }>(list: T): T {
  for (const item of list.items ?? []) if (item.metadata) delete item.metadata.managedFields;
  return list;
}

async function iptablesBackend(): Promise<string> {
  const r = await execa('iptables', ['--version'], { reject: false, timeout: 10_000 });
  if (r.exitCode !== 0) return `unknown (iptables --version: ${String(r.stderr).trim() || 'not found'})`;
  const out = String(r.stdout).trim();
  const m = /\((nf_tables|legacy)\)/.exec(out);
  return m ? `${m[1]} (${out})` : out;
}

async function hostFacts(layout: Layout): Promise<Record<string, unknown>> {
  const read = (f: string): string | undefined => (existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined);
  return {
    hostname: os.hostname(),
    kernel: { release: os.release(), version: os.version(), machine: os.machine(), 'proc-version': read('/proc/version') },
    'os-release': read('/etc/os-release'),
    'cgroup-version': hostCgroupVersion(),
    'iptables-backend': await iptablesBackend(),
    cpus: os.cpus().length,
    'memory-bytes': os.totalmem(),
    'free-memory-bytes': os.freemem(),
    'uptime-seconds': os.uptime(),
    'load-average': os.loadavg(),
    node: process.version,
    'k8s-root': layout.root,
    'in-snap': layout.inSnap,
  };
}

/**
 * Collects the bundle and writes it to `outFile` (0600). Each item is collected on its own; one
 * that fails is named in the manifest's errors and the rest still go in.
 */
export async function collectInspection(layout: Layout, client: InspectClient, outFile: string, progress: (msg: string) => void = () => {}): Promise<InspectResult> {
  const outDir = path.dirname(path.resolve(outFile));
  if (!existsSync(outDir)) throw new InspectError(`the output directory ${outDir} does not exist; create it or give another file`);
  if (existsSync(outFile)) throw new InspectError(`${outFile} already exists; give another file name`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'k8s-inspect-'));
  chmodSync(work, 0o700);
  const top = path.basename(outFile).replace(/\.tar\.gz$|\.tgz$/, '') || 'k8s-inspect';
  const root = path.join(work, top);
  mkdirSync(root, { mode: 0o700 });
  const entries: string[] = [];
  const errors: Record<string, string> = {};
  const write = (rel: string, content: string): void => {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, redact(content), { mode: 0o600 });
    entries.push(rel);
  };
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  /** k8sd's views, keyed as `--output-format json` prints them. */
  const k8sdJson = (v: unknown): string => json(kebabKeys(v));
  const item = async (rel: string, what: string, get: () => Promise<string>): Promise<void> => {
    progress(`collecting ${what}`);
    try {
      write(rel, await get());
    } catch (err) {
      errors[rel] = (err as Error).message;
    }
  };
  try {
    const clustered = await client.node().then((n) => n.clustered, () => false);
    await item('k8s/status.json', 'k8s status', async () => k8sdJson(await client.status()));
    await item('k8s/node.json', 'node info', async () => k8sdJson(await client.node()));
    await item('k8s/services.json', 'service states', async () => k8sdJson(await client.call(local.services)));
    if (clustered) {
      await item('k8s/certs-status.json', 'certificate expiry', async () => k8sdJson(await client.call(local.certsStatus)));
      await item('k8s/features.json', 'feature status', async () => k8sdJson(await client.call(local.features)));
      await item('k8s/cluster-config.json', 'cluster settings', async () => json(await client.getClusterConfig()));
      await item('k8s/secrets-encryption.json', 'encryption-at-rest status (key ids only)', async () => k8sdJson(await client.call(local.encryptionStatus)));
      await item('etcd/members-and-health.json', 'etcd members and health', async () => k8sdJson(await client.call(local.datastore)));
    }
    // Args files only: the config files beside them (conf.d) and every key or kubeconfig file are never read.
    if (existsSync(layout.argsDir)) {
      for (const f of readdirSync(layout.argsDir).sort()) {
        const file = layout.args(f);
        if (!statSync(file).isFile()) continue;
        await item(`services/${f}.args`, `${f} args`, async () => readFileSync(file, 'utf8'));
      }
    }
    if (existsSync(layout.logDir)) {
      for (const f of readdirSync(layout.logDir).filter((x) => x.endsWith('.log')).sort()) {
        const lines = f === 'k8sd.log' ? K8SD_LOG_LINES : LOG_LINES;
        await item(`logs/${f}`, `${f} (last ${lines} lines)`, async () => tail(path.join(layout.logDir, f), lines));
      }
    }
    const admin = layout.kubeconfig('admin.conf');
    if (existsSync(admin)) {
      const core = coreApi(admin);
      await item('kubernetes/nodes.json', 'nodes', async () => json(slim(await (await core).listNode())));
      await item('kubernetes/pods.json', 'pods in every namespace', async () => json(slim(await (await core).listPodForAllNamespaces())));
      await item('kubernetes/events.json', 'events in every namespace', async () => json(slim(await (await core).listEventForAllNamespaces())));
    } else {
      errors['kubernetes/'] = `no admin kubeconfig at ${admin} (a worker node, or not clustered): the API's view is collected on a control-plane node`;
    }
    await item('host.json', 'host facts', async () => json(await hostFacts(layout)));
    write(
      'manifest.json',
      json({
        'created-at': new Date().toISOString(),
        entries: [...entries],
        errors,
        'never-included': ['private keys', 'join and bootstrap tokens', 'kubeconfig credentials', 'Secret data', 'encryption keys (KMS KEK ring, aesgcm config, snapshot key)'],
        'redaction-rules': REDACTION_RULES.map((r) => r.what),
        'log-lines': { services: LOG_LINES, k8sd: K8SD_LOG_LINES },
      }),
    );
    progress('packing');
    const tmpOut = path.join(work, 'bundle.tar.gz');
    const r = await execa('tar', ['-C', work, '--owner=0', '--group=0', '-czf', tmpOut, top], { reject: false, timeout: 300_000 });
    if (r.exitCode !== 0) throw new InspectError(`tar failed: ${String(r.stderr).trim()}`);
    chmodSync(tmpOut, 0o600);
    writeFileSync(outFile, readFileSync(tmpOut), { mode: 0o600, flag: 'wx' });
    chmodSync(outFile, 0o600);
    return { file: path.resolve(outFile), entries, errors };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The default bundle name: in the current directory, named after the host and the time. */
export function defaultBundleName(now = new Date()): string {
  return `k8s-inspect-${os.hostname()}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.tar.gz`;
}
