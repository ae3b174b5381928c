// The cos-agent relation (interface cos_agent): this unit's scrape job for k8sd's own metrics, with
// the bearer token and the CA to verify k8sd's certificate, in the unit bag's "config" as the
// grafana-agent machine charm reads it. The token never goes to the log.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Reconciliation } from '../../runtime/src/reconcile.js';
import type { NodeIdentity } from './workload.js';

export const COS_AGENT_ENDPOINT = 'cos-agent';
export const K8SD_METRICS_PORT = 6401;

/** K8S_CHARM_K8SD_STATE_DIR overrides where k8sd keeps metrics-token and cluster.crt (tests, dev snaps). */
export function k8sdStateDirFromEnv(env: NodeJS.ProcessEnv): string {
  return env.K8S_CHARM_K8SD_STATE_DIR || '/var/snap/k8s/common/var/lib/k8sd/state';
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

/** The cos_agent unit data: one Prometheus scrape job for this node's k8sd. */
export function cosAgentConfig(node: NodeIdentity, app: string, credentials: ScrapeCredentials): Record<string, unknown> {
  return {
    metrics_alert_rules: {},
    log_alert_rules: {},
    dashboards: [],
    log_slots: [],
    metrics_scrape_jobs: [
      {
        job_name: `k8sd-${node.name}`,
        metrics_path: '/metrics',
        scheme: 'https',
        static_configs: [{ targets: [`${node.address}:${K8SD_METRICS_PORT}`], labels: { node: node.name, 'juju-application': app } }],
        authorization: { type: 'Bearer', credentials: credentials.token },
        // k8sd serves its cluster identity certificate, issued for the node's host name.
        tls_config: { ca: credentials.caPem, server_name: node.name },
      },
    ],
  };
}

/** Publishes the scrape job on every cos-agent relation; waits (without blocking others) until k8sd made its token. */
export async function reconcileCosAgent(r: Reconciliation, node: NodeIdentity, stateDir: string): Promise<void> {
  const relations = await r.model.relations(COS_AGENT_ENDPOINT);
  if (relations.length === 0) return;
  const credentials = await readScrapeCredentials(stateDir);
  if (!credentials) r.waiting("Waiting for k8sd's metrics token");
  else {
    const config = JSON.stringify(cosAgentConfig(node, r.model.unit.app, credentials));
    for (const relation of relations) (await relation.localUnitBag()).set('config', config);
  }
}
