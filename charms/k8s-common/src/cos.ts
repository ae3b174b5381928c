// The cos-agent relation (interface cos_agent): this unit's Prometheus scrape jobs, alert rules and
// Grafana dashboards in the unit bag's "config", as the grafana-agent machine charm (a subordinate on
// the same machine) reads it. Credentials never go to the log.
//
// Jobs and their credentials:
// - k8sd (every node): k8sd's own bearer token (<k8sd state>/metrics-token) and its cluster certificate.
// - kube-apiserver (control plane) and the kubelet (nodes that run one): a ServiceAccount token of
//   kube-system/cos-scraper, bound to a ClusterRole that allows only `get` on the /metrics URLs and on
//   nodes/metrics (the kubelet's /metrics and /metrics/cadvisor). The k8s leader mints it
//   (`k8s kubectl create token`, 30 days, renewed when 10 are left) into an application-owned Juju
//   secret: its peers read the secret's ID (and the CAs, from the leader's PKI directory: ca.crt and
//   kubelet-ca.crt) from the peer application bag, workers from the
//   k8s-cluster application bag (the secret is granted to that relation). A unit asks for it by
//   putting cos-scrape=wanted in its own bag, so no token exists while nobody scrapes.
// - etcd (control plane): its plain-HTTP metrics listener, bound to 127.0.0.1 only
//   (--listen-metrics-urls); no credential leaves the node. The client port would need an etcd
//   client certificate, which is full access to the datastore.
// kube-scheduler and kube-controller-manager are not scraped: they serve self-signed certificates that
// no scraper can verify, and this charm does not send a token to an endpoint it cannot authenticate.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Model, Relation, RelationBag } from '../../runtime/src/model.js';
import type { Reconciliation } from '../../runtime/src/reconcile.js';
import { COS_ALERT_RULES, COS_DASHBOARDS } from './cos-content.js';
import type { K8sCli, NodeIdentity } from './workload.js';

export const COS_AGENT_ENDPOINT = 'cos-agent';
export const K8SD_METRICS_PORT = 6401;
export const APISERVER_PORT = 6443;
export const KUBELET_PORT = 10250;
/** etcd's --listen-metrics-urls: the client port (2379) + 2, on loopback (src/services/specs.ts). */
export const ETCD_METRICS_PORT = 2381;

export const SCRAPER_NAMESPACE = 'kube-system';
export const SCRAPER_ACCOUNT = 'cos-scraper';
export const SCRAPER_ROLE = 'k8s-charm:cos-scraper';
export const SCRAPER_TOKEN_LIFETIME_S = 30 * 24 * 3600;
export const SCRAPER_TOKEN_RENEW_BEFORE_S = 10 * 24 * 3600;

/** Unit bag key on the peer / k8s-cluster relation: this unit has a cos-agent relation. */
export const UNIT_COS_SCRAPE = 'cos-scrape';
/** Application bag keys (peer and k8s-cluster) the leader fills. */
export const APP_COS_SECRET_ID = 'cos-scrape-secret-id';
export const APP_COS_APISERVER_CA = 'cos-apiserver-ca';
export const APP_COS_KUBELET_CA = 'cos-kubelet-ca';
const SECRET_LABEL = 'cos-scrape-token';

/** K8S_CHARM_K8SD_STATE_DIR overrides where k8sd keeps metrics-token and cluster.crt (tests, dev snaps). */
export function k8sdStateDirFromEnv(env: NodeJS.ProcessEnv): string {
  return env.K8S_CHARM_K8SD_STATE_DIR || '/var/snap/k8s/common/var/lib/k8sd/state';
}

/** K8S_CHARM_PKI_DIR overrides the node's Kubernetes PKI directory (tests, dev snaps). */
export function pkiDirFromEnv(env: NodeJS.ProcessEnv): string {
  return env.K8S_CHARM_PKI_DIR || '/etc/kubernetes/pki';
}

export interface ScrapeCredentials {
  readonly token: string;
  readonly caPem: string;
}

export async function readScrapeCredentials(stateDir: string): Promise<ScrapeCredentials | undefined> {
  try {
    const [token, caPem] = await Promise.all([readFile(path.join(stateDir, 'metrics-token'), 'utf8'), readFile(path.join(stateDir, 'cluster.crt'), 'utf8')]);
    return token.trim() ? { token: token.trim(), caPem } : undefined;
  } catch {
    return undefined;
  }
}

/** What the k8s leader hands out for the Kubernetes endpoints. */
export interface KubernetesScrapeCredentials {
  readonly token: string;
  readonly apiserverCa: string;
  /** undefined when the leader found no kubelet CA (kubelet-ca.crt) to hand out. */
  readonly kubeletCa: string | undefined;
}

/** Which of the node's components this unit scrapes. */
export interface ScrapedComponents {
  readonly controlPlane: boolean;
  readonly kubelet: boolean;
}

type Job = Record<string, unknown>;

function staticConfig(target: string, node: NodeIdentity, app: string, component: string): Job {
  return { targets: [target], labels: { node: node.name, 'juju-application': app, component } };
}

function bearerJob(name: string, node: NodeIdentity, app: string, target: string, metricsPath: string, token: string, ca: string, serverName?: string): Job {
  const component = name.replace(/-(cadvisor)$/, '');
  return {
    job_name: `${name}-${node.name}`,
    metrics_path: metricsPath,
    scheme: 'https',
    static_configs: [staticConfig(target, node, app, component)],
    authorization: { type: 'Bearer', credentials: token },
    tls_config: { ca, ...(serverName ? { server_name: serverName } : {}) },
  };
}

/** The scrape jobs of this node. */
export function scrapeJobs(
  node: NodeIdentity,
  app: string,
  k8sd: ScrapeCredentials,
  components: ScrapedComponents,
  kubernetes: KubernetesScrapeCredentials | undefined,
): Job[] {
  // k8sd serves its cluster identity certificate, issued for the node's host name.
  const jobs = [bearerJob('k8sd', node, app, `${node.address}:${K8SD_METRICS_PORT}`, '/metrics', k8sd.token, k8sd.caPem, node.name)];
  if (components.controlPlane) {
    jobs.push({
      job_name: `etcd-${node.name}`,
      metrics_path: '/metrics',
      scheme: 'http',
      // Loopback only: grafana-agent runs on this machine.
      static_configs: [staticConfig(`127.0.0.1:${ETCD_METRICS_PORT}`, node, app, 'etcd')],
    });
  }
  if (kubernetes) {
    if (components.controlPlane) {
      jobs.push(bearerJob('kube-apiserver', node, app, `${node.address}:${APISERVER_PORT}`, '/metrics', kubernetes.token, kubernetes.apiserverCa));
    }
    if (components.kubelet && kubernetes.kubeletCa) {
      const target = `${node.address}:${KUBELET_PORT}`;
      jobs.push(bearerJob('kubelet', node, app, target, '/metrics', kubernetes.token, kubernetes.kubeletCa));
      jobs.push(bearerJob('kubelet-cadvisor', node, app, target, '/metrics/cadvisor', kubernetes.token, kubernetes.kubeletCa));
    }
  }
  return jobs;
}

/** base64(xz(json)): the encoding grafana-agent's cos_agent library expects for each dashboard. */
export async function encodeDashboard(dashboard: unknown): Promise<string> {
  const { stdout } = await execa('xz', ['--format=xz', '--compress', '--stdout'], { input: Buffer.from(JSON.stringify(dashboard)), encoding: 'buffer' });
  return Buffer.from(stdout).toString('base64');
}

/** The cos_agent unit data. */
export async function cosAgentConfig(jobs: readonly Job[]): Promise<Record<string, unknown>> {
  return {
    metrics_alert_rules: COS_ALERT_RULES,
    log_alert_rules: {},
    dashboards: await Promise.all(COS_DASHBOARDS.map(encodeDashboard)),
    log_slots: [],
    metrics_scrape_jobs: jobs,
  };
}

/** The k8s leader's side of the token: where its peers and workers find the secret and the CAs. */
export interface CredentialsSource {
  /** The bag holding APP_COS_* (peer app bag, or the k8s app bag on a worker's cluster relation). */
  readonly bag: RelationBag;
  /** This unit's own bag on that relation, where it asks for the token. */
  readonly own: RelationBag;
}

async function kubernetesCredentials(model: Model, source: CredentialsSource): Promise<KubernetesScrapeCredentials | undefined> {
  const id = source.bag.get(APP_COS_SECRET_ID);
  const apiserverCa = source.bag.get(APP_COS_APISERVER_CA);
  if (!id || !apiserverCa) return undefined;
  const content = await model.secrets.get(id, { refresh: true });
  if (!content.token) return undefined;
  return { token: content.token, apiserverCa, kubeletCa: source.bag.get(APP_COS_KUBELET_CA) };
}

/**
 * Publishes this unit's jobs on every cos-agent relation, and asks the leader for the Kubernetes
 * token while there is one. Waits (without blocking the rest) for missing credentials.
 */
export async function reconcileCosAgent(
  r: Reconciliation,
  node: NodeIdentity,
  stateDir: string,
  components: ScrapedComponents,
  source: CredentialsSource | undefined,
): Promise<void> {
  const relations = await r.model.relations(COS_AGENT_ENDPOINT);
  if (relations.length === 0) {
    if (source?.own.get(UNIT_COS_SCRAPE)) source.own.delete(UNIT_COS_SCRAPE);
    return;
  }
  source?.own.set(UNIT_COS_SCRAPE, 'wanted');
  const k8sd = await readScrapeCredentials(stateDir);
  if (!k8sd) {
    r.waiting("Waiting for k8sd's metrics token");
    return;
  }
  const kubernetes = source ? await kubernetesCredentials(r.model, source) : undefined;
  if (!kubernetes) r.waiting('Waiting for the Kubernetes scrape token from the k8s leader');
  const config = JSON.stringify(await cosAgentConfig(scrapeJobs(node, r.model.unit.app, k8sd, components, kubernetes)));
  for (const relation of relations) (await relation.localUnitBag()).set('config', config);
}

/** The ServiceAccount and its read-only metrics role. */
export function scraperRbacManifest(): string {
  const account = { kind: 'ServiceAccount', name: SCRAPER_ACCOUNT, namespace: SCRAPER_NAMESPACE };
  const documents = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SCRAPER_ACCOUNT, namespace: SCRAPER_NAMESPACE } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: SCRAPER_ROLE },
      rules: [
        { nonResourceURLs: ['/metrics', '/metrics/slis'], verbs: ['get'] },
        // The kubelet authorizes /metrics, /metrics/cadvisor, /metrics/resource and /metrics/probes as nodes/metrics.
        { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: SCRAPER_ROLE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: SCRAPER_ROLE },
      subjects: [account],
    },
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: documents });
}

/** A CA certificate (bundle) of the control plane's PKI directory; undefined when absent or empty. */
async function readCa(pkiDir: string, file: string): Promise<string | undefined> {
  try {
    const pem = await readFile(path.join(pkiDir, file), 'utf8');
    return pem.includes('-----BEGIN CERTIFICATE-----') ? pem : undefined;
  } catch {
    return undefined;
  }
}

/** Whether any unit on these relations (or this unit's own cos-agent) wants the token. */
async function scrapeWanted(model: Model, relations: readonly Relation[]): Promise<boolean> {
  if ((await model.relations(COS_AGENT_ENDPOINT)).length > 0) return true;
  for (const relation of relations) {
    for (const unit of relation.units) if ((await relation.unitBag(unit)).get(UNIT_COS_SCRAPE) === 'wanted') return true;
  }
  return false;
}

/**
 * Leader: mints (or renews) the scraper token into the secret and shares its ID and the CAs on the
 * peer relation and every k8s-cluster relation.
 */
export async function provideScrapeCredentials(
  model: Model,
  k8s: K8sCli,
  pkiDir: string,
  peer: Relation,
  workerRelations: readonly Relation[],
  now: Date = new Date(),
): Promise<void> {
  if (!(await scrapeWanted(model, [peer, ...workerRelations]))) return;
  const shared = await peer.localAppBag();
  const known = shared.get(APP_COS_SECRET_ID);
  const current = known ? await model.secrets.get(known, { peek: true }).catch(() => undefined) : undefined;
  let id = current ? known : undefined;
  const expires = Date.parse(current?.expires ?? '');
  if (!current?.token || !(expires - now.getTime() > SCRAPER_TOKEN_RENEW_BEFORE_S * 1000)) {
    await k8s.kubectlApply(scraperRbacManifest());
    const token = await k8s.createServiceAccountToken(SCRAPER_NAMESPACE, SCRAPER_ACCOUNT, SCRAPER_TOKEN_LIFETIME_S);
    const content = { token, expires: new Date(now.getTime() + SCRAPER_TOKEN_LIFETIME_S * 1000).toISOString() };
    if (id) await model.secrets.set(id, content);
    else id = await model.secrets.add(content, { label: SECRET_LABEL, description: 'Bearer token for scraping the Kubernetes metrics endpoints' });
    await model.log('INFO', `minted a ${SCRAPER_NAMESPACE}/${SCRAPER_ACCOUNT} token for cos-agent, valid until ${content.expires}`);
  }
  if (!id) throw new Error('no cos-agent scrape secret');
  // The CA of kube-apiserver's serving certificate, and the one k8sd signs kubelet serving certificates with.
  const apiserverCa = await readCa(pkiDir, 'ca.crt');
  const kubeletCa = await readCa(pkiDir, 'kubelet-ca.crt');
  if (!apiserverCa) throw new Error(`no Kubernetes CA at ${path.join(pkiDir, 'ca.crt')}`);
  for (const relation of [peer, ...workerRelations]) {
    const bag = await relation.localAppBag();
    bag.set(APP_COS_SECRET_ID, id);
    bag.set(APP_COS_APISERVER_CA, apiserverCa);
    if (kubeletCa) bag.set(APP_COS_KUBELET_CA, kubeletCa);
    else if (bag.get(APP_COS_KUBELET_CA)) bag.delete(APP_COS_KUBELET_CA);
    if (relation !== peer) await model.secrets.grant(id, relation);
  }
}
