// Prometheus metrics of k8sd itself, for cos-agent to scrape: the expiry of every certificate under
// the node's PKI directory, the cluster members k8sd sees (and the joins and removals it observed),
// and each feature's state. Served over HTTPS (the node's cluster identity certificate) on their own
// port, K8SD_METRICS_PORT, to callers presenting the bearer token k8sd keeps at
// <k8sd state>/metrics-token (0600, made at first start; root reads it, e.g. the charm).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ModuleRegistry, NodeContext } from './node-context.js';
import { installAdvice } from '../install.js';
import { featureStatuses } from './features/cluster-config.js';
import { serverTlsOptions } from './tls.js';

export const K8SD_METRICS_PORT = 6401;
export const METRICS_PATH = '/metrics';

/** The token file next to k8sd's other state. */
export function metricsTokenFile(d: Pick<NodeContext, 'layout'>): string {
  return path.join(d.layout.k8sdStateDir, 'metrics-token');
}

/** Reads the token, creating it (0600, written to a temp file and renamed) when absent. */
export function ensureMetricsToken(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('hex');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
  return token;
}

export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from((header ?? '').replace(/^Bearer\s+/i, ''));
  const wanted = Buffer.from(token);
  return token !== '' && header !== undefined && /^Bearer\s+/i.test(header) && given.length === wanted.length && timingSafeEqual(given, wanted);
}

function walkCertificates(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const files: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    const info = statSync(full);
    if (info.isDirectory()) files.push(...walkCertificates(full));
    else if (entry.endsWith('.crt')) files.push(full);
  }
  return files.sort();
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Counts of members that appeared and went between scrapes, since this k8sd started. */
export class MembershipObserver {
  private known: Set<string> | undefined;
  joins = 0;
  removals = 0;

  observe(names: readonly string[]): void {
    const now = new Set(names);
    if (this.known) {
      for (const name of now) if (!this.known.has(name)) this.joins += 1;
      for (const name of this.known) if (!now.has(name)) this.removals += 1;
    }
    this.known = now;
  }
}

export interface MetricsInput {
  readonly certificates: ReadonlyArray<{ readonly name: string; readonly notAfter: Date }>;
  readonly members: ReadonlyArray<{ readonly name: string; readonly role: string }>;
  readonly joins: number;
  readonly removals: number;
  readonly features: ReadonlyArray<{ readonly name: string; readonly enabled: boolean; readonly ready: boolean }>;
}

/** The Prometheus text exposition format (0.0.4). */
export function renderMetrics(m: MetricsInput): string {
  const lines = [
    '# HELP k8sd_certificate_expiry_seconds Expiry of each certificate under the node\'s PKI directory, as a Unix time.',
    '# TYPE k8sd_certificate_expiry_seconds gauge',
    ...m.certificates.map((c) => `k8sd_certificate_expiry_seconds{certificate="${label(c.name)}"} ${Math.floor(c.notAfter.getTime() / 1000)}`),
    '# HELP k8sd_cluster_members Cluster members this node\'s datastore lists, by role.',
    '# TYPE k8sd_cluster_members gauge',
    ...['control-plane', 'worker'].map((role) => `k8sd_cluster_members{role="${role}"} ${m.members.filter((n) => n.role === role).length}`),
    '# HELP k8sd_node_joins_observed_total Nodes that joined the cluster, as this k8sd observed them since it started.',
    '# TYPE k8sd_node_joins_observed_total counter',
    `k8sd_node_joins_observed_total ${m.joins}`,
    '# HELP k8sd_node_removals_observed_total Nodes that left the cluster, as this k8sd observed them since it started.',
    '# TYPE k8sd_node_removals_observed_total counter',
    `k8sd_node_removals_observed_total ${m.removals}`,
    '# HELP k8sd_feature_enabled Whether a feature is enabled (1) or not (0).',
    '# TYPE k8sd_feature_enabled gauge',
    ...m.features.map((f) => `k8sd_feature_enabled{feature="${label(f.name)}"} ${f.enabled ? 1 : 0}`),
    '# HELP k8sd_feature_ready Whether a feature reports ready (1) or not (0).',
    '# TYPE k8sd_feature_ready gauge',
    ...m.features.map((f) => `k8sd_feature_ready{feature="${label(f.name)}"} ${f.ready ? 1 : 0}`),
  ];
  return `${lines.join('\n')}\n`;
}

async function collect(d: NodeContext, observer: MembershipObserver): Promise<MetricsInput> {
  const pki = d.layout.pkiDir;
  const certificates = walkCertificates(pki).flatMap((file) => {
    try {
      return [{ name: path.relative(pki, file), notAfter: d.crypto.parseCertificate(readFileSync(file, 'utf8')).notAfter }];
    } catch {
      return []; // not a PEM certificate: nothing to report
    }
  });
  const members = d.state ? (await d.state.listNodes()).map((n) => ({ name: n.name, role: n.role })) : [];
  if (d.state) observer.observe(members.map((n) => n.name));
  const features = (await featureStatuses(d).catch(() => [])).map((f) => ({ name: f.name, enabled: f.enabled, ready: f.ready }));
  return { certificates, members, joins: observer.joins, removals: observer.removals, features };
}

export function registerMetrics(d: NodeContext & ModuleRegistry): void {
  const observer = new MembershipObserver();
  let server: https.Server | undefined;
  d.onClustered.push(async (node) => {
    if (server) return;
    const token = ensureMetricsToken(metricsTokenFile(d));
    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== METRICS_PATH) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`k8sd serves only GET ${METRICS_PATH} here\n`);
        return;
      }
      if (!bearerMatches(req.headers.authorization, token)) {
        res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' }).end('a bearer token is required (the charm\'s cos-agent relation carries it)\n');
        return;
      }
      collect(d, observer).then(
        (input) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(input)),
        (err: Error) => {
          d.log.error('metrics collection failed', { error: err.message });
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed; see ${installAdvice(d.layout).k8sdLog}\n`);
        },
      );
    };
    server = https.createServer({ ...serverTlsOptions(), cert: d.identity.cert, key: d.identity.key }, handle);
    server.requestTimeout = 30_000;
    server.unref(); // k8sd's shutdown does not wait for scrapers
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(K8SD_METRICS_PORT, node.address, () => resolve());
    });
    d.log.info('metrics listening', { address: `${node.address}:${K8SD_METRICS_PORT}`, path: METRICS_PATH });
  });
}
