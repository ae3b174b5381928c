// Automatic renewal: k8sd renews a leaf certificate when less than a configurable part
// of its lifetime is left. It raises a Kubernetes Event before renewing and logs after.
import type { CoreV1Event } from '@kubernetes/client-node';
import { ClusterConfig } from '../../datastore/state.js';
import { coreApi } from '../kube.js';
import { ApiError } from '../http.js';
import type { NodeContext } from '../node-context.js';
import type { CertsNode, RenewWorkerCertificates } from './node.js';
import { CertEntry, inventory } from './inventory.js';
import { refreshControlPlane } from './refresh.js';
import { refreshableNames } from '../../pki/table.js';
import type { WorkerCertificate } from '../membership/worker-certificates.js';

/**
 * Remaining lifetime below which a certificate is renewed: the fraction of its lifetime
 * (default 1/3) or the fixed window (default 30 days), whichever comes first — capped at
 * half the lifetime so that short-lived certificates are not renewed in a loop.
 */
export function renewalThresholdMs(lifetimeMs: number, policy: ClusterConfig['certificates']): number {
  return Math.max(lifetimeMs * policy.renewFraction, Math.min(policy.renewBeforeMs, lifetimeMs / 2));
}

/**
 * A kubelet renews its client certificate between 70% and 90% of its lifetime; k8sd steps in only
 * when less than this part is left (a kubelet that could not renew: its CSRs were denied, the API
 * server was away), and then restarts the kubelet with the pair it issued.
 */
export const SELF_RENEWING_BACKSTOP_FRACTION = 0.05;

export function dueForRenewal(entries: CertEntry[], policy: ClusterConfig['certificates'], now = Date.now()): CertEntry[] {
  return entries.filter((e) => {
    if (e.kind === 'ca' || e.externallyManaged) return false;
    const lifetime = Date.parse(e.expires) - Date.parse(e.notBefore);
    const threshold = e.selfRenewing ? lifetime * SELF_RENEWING_BACKSTOP_FRACTION : renewalThresholdMs(lifetime, policy);
    return Date.parse(e.expires) - now < threshold;
  });
}

/**
 * The involved object is a Node (cluster-scoped): the apiserver accepts such an Event only in
 * "default" (core/v1 validation: involvedObject.namespace "" must match the event's), as kubelet does.
 */
const EVENT_NAMESPACE = 'default';

async function raiseEvent(d: Pick<NodeContext, 'layout'>, nodeName: string, due: CertEntry[]): Promise<void> {
  const core = await coreApi(d.layout.kubeconfig('admin.conf'));
  const now = new Date();
  const soonest = due.map((e) => e.expires).sort()[0];
  const event: CoreV1Event = {
    metadata: { generateName: `${nodeName}.certificate-expiration.`, namespace: EVENT_NAMESPACE },
    involvedObject: { kind: 'Node', name: nodeName, apiVersion: 'v1' },
    reason: 'CertificateExpirationWarning',
    type: 'Warning',
    message: `certificates ${due.map((e) => e.name).join(', ')} on node ${nodeName} expire (soonest at ${soonest}); k8sd is renewing them`,
    source: { component: 'k8sd', host: nodeName },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  };
  await core.createNamespacedEvent({ namespace: EVENT_NAMESPACE, body: event });
}

export class RenewalController {
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly d: CertsNode,
    private readonly renewWorker: RenewWorkerCertificates,
  ) {}

  start(intervalMs: number): void {
    this.stop();
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass: find due certificates, warn, renew, log. Safe to call concurrently (skips). */
  async check(): Promise<string[]> {
    if (this.running) return [];
    this.running = true;
    try {
      const node = this.d.node();
      if (!node) return [];
      if (node.role === 'worker') {
        // Workers hold no CA keys: the control plane re-signs their certificates, under the
        // cluster's policy as of the join (the default for nodes that joined before it was sent).
        const due = dueForRenewal(inventory(this.d.layout, this.d.crypto, 'worker'), node.certificatePolicy ?? WORKER_POLICY);
        if (!due.length) return [];
        this.d.log.warn('worker certificates expire soon; renewing', { certificates: due.map((e) => e.name) });
        const r = await refreshWorker(this.d, this.renewWorker, due.map((e) => e.name));
        this.d.log.info('renewed expiring certificates', { certificates: r.certificates, restarted: r.restarted });
        return r.certificates;
      }
      if (!this.d.state) return [];
      const config = await this.d.state.getConfig();
      if (!config) return [];
      const due = dueForRenewal(inventory(this.d.layout, this.d.crypto, node.role), config.certificates);
      if (!due.length) return [];
      await raiseEvent(this.d, node.name, due).catch((err: Error) => this.d.log.warn('could not record the certificate expiration event', { error: err.message }));
      const result = await refreshControlPlane(this.d, { certificates: due.map((e) => e.name) });
      this.d.log.info('renewed expiring certificates', { certificates: result.certificates, expires: result.expires, restarted: result.restarted });
      return result.certificates;
    } catch (err) {
      this.d.log.error('certificate renewal failed; will retry', { error: (err as Error).message });
      return [];
    } finally {
      this.running = false;
    }
  }
}

const WORKER_POLICY: ClusterConfig['certificates'] = { lifetimeMs: 365 * 86_400_000, renewFraction: 1 / 3, renewBeforeMs: 30 * 86_400_000, checkIntervalMs: 3_600_000 };

/** refresh-certs on a worker: the control plane signs new client certificates; the kubelet gets a new serving CSR. */
export async function refreshWorker(d: Pick<NodeContext, 'layout' | 'crypto'>, renewWorker: RenewWorkerCertificates, names?: string[]): Promise<{ certificates: string[]; expires: string; restarted: string[] }> {
  // The worker's certificates in the PKI table: the kubelet serving certificate and the client kubeconfigs.
  const valid = refreshableNames('worker') as WorkerCertificate[];
  const wanted = (names?.length ? names : [...valid]) as WorkerCertificate[];
  for (const n of wanted) {
    if (!valid.includes(n)) throw new ApiError(400, `unknown worker certificate "${n}"; choose from ${valid.join(', ')}`);
  }
  const r = await renewWorker(wanted);
  const renewed = inventory(d.layout, d.crypto, 'worker').filter((e) => (r.renewed as string[]).includes(e.name));
  const expires = renewed.map((e) => e.expires).sort()[0] ?? '';
  return { certificates: r.renewed, expires, restarted: r.restarted };
}
