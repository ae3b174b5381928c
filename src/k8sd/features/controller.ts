// The feature controller (control-plane nodes): applies each enabled feature's objects with
// server-side apply, prunes objects a feature no longer has, removes every object of a disabled
// feature, re-applies drifted objects on each pass, and records each feature's status in etcd.
// Every control-plane node runs it; they converge on the same objects from the same config.
import type { KubeConfig, KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { existsSync, statSync } from 'node:fs';
import { FeatureSettings, IMPLEMENTED_FEATURES, ImplementedFeature } from '../../config/features.js';
import { ClusterConfig, featuresOf, FeatureStatusRecord } from '../../datastore/state.js';
import type { NodeContext } from '../node-context.js';
import { loadKubeconfig } from '../kube.js';
import { apiStatus } from '../membership/kube-clients.js';
import { leafLifetimeMs } from '../membership/join-server.js';
import { trustBundle } from '../../pki/signer.js';
import { KUBELET_SERVING_CA } from '../../pki/table.js';
import { FEATURE_COMPONENT, FEATURE_IMAGES, FEATURE_KINDS, FEATURE_LABEL, FeatureObject, featureObjects, FIELD_MANAGER, localPathOnNode, ManifestContext, METRICS_SERVER_TLS_SECRET, MetricsServerPki } from './manifests.js';
import { issueServingPair, ServingPair, servingPairProblem } from './metrics-server-tls.js';
import { dataPlaneMessage, GATEWAY_API_COMPONENT, GATEWAY_API_FILE, ingressTlsHash, loadGatewayApi, waitForCrdsEstablished } from './ingress-gateway.js';
import { nodeFeatureView, syncNodeFeatures } from './node.js';
import { removeLoadBalancer, runLoadBalancer } from './load-balancer.js';

const INTERVAL_MS = 20_000;
/**
 * While an enabled feature is not ready yet, settling passes come this often. They only re-read
 * the readiness of what the last full pass applied (a few GETs), so a feature is seen ready within
 * half a second of its workloads, without re-applying every manifest (2-3 s a pass under load).
 */
const SETTLING_INTERVAL_MS = 500;

interface Clients {
  kc: KubeConfig;
  objects: KubernetesObjectApi;
  /** admin.conf as loaded: a CA rotation or refresh-certs rewrites it (new CA, new client certificate). */
  stamp: string;
}

export class FeatureController {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  /** The pass owed after the one under way (trigger() during a pass): none, a settling one or a full one. */
  private owed: 'none' | 'settling' | 'full' = 'none';
  private clients?: Clients;
  private lastError = '';
  private settling?: NodeJS.Timeout;
  /** What the last full pass applied, per enabled feature: settling passes re-read its readiness. */
  private readonly applied = new Map<ImplementedFeature, FeatureObject[]>();

  constructor(private readonly d: NodeContext) {}

  start(): void {
    this.stop();
    this.timer = setInterval(() => void this.trigger(), INTERVAL_MS);
    void this.trigger();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.settling) clearTimeout(this.settling);
    this.timer = undefined;
    this.settling = undefined;
  }

  /**
   * Runs a pass now (or right after the one under way); resolves when it is done. A full pass
   * applies every feature's objects; a settling pass (`full` false) re-reads readiness only.
   */
  trigger(full = true): Promise<void> {
    if (this.running) {
      // A settling request never lowers an owed full pass.
      if (full) this.owed = 'full';
      else if (this.owed === 'none') this.owed = 'settling';
      return this.running;
    }
    this.running = this.reconcile(full)
      .catch((err: Error) => {
        if (err.message !== this.lastError) this.d.log.warn('feature reconcile failed; retrying', { error: err.message });
        this.lastError = err.message;
      })
      .finally(() => {
        this.running = undefined;
        const owed = this.owed;
        this.owed = 'none';
        if (owed !== 'none') void this.trigger(owed === 'full');
      });
    return this.running;
  }

  private async api(): Promise<Clients> {
    const file = this.d.layout.kubeconfig('admin.conf');
    const st = statSync(file);
    const stamp = `${st.ino}:${st.mtimeMs}`;
    if (this.clients?.stamp !== stamp) {
      const { KubernetesObjectApi: Api } = await import('../kube-api.js');
      const kc = await loadKubeconfig(file);
      this.clients = { kc, objects: Api.makeApiClient(kc), stamp };
    }
    return this.clients;
  }

  private manifestContext(settings: FeatureSettings): ManifestContext {
    const versions = Object.fromEntries(Object.entries(FEATURE_IMAGES).map(([name, [component]]) => [name, this.d.layout.componentVersion(component)])) as ManifestContext['versions'];
    return { settings, versions, fips: this.d.fips.enabled, root: this.d.layout.root };
  }

  async reconcile(full = true): Promise<void> {
    const node = this.d.node();
    if (!node || node.role !== 'control-plane' || !this.d.state) return;
    const config = await this.d.state.getConfig();
    if (!config) return;
    await syncNodeFeatures(this.d.host, this.d.log, node, nodeFeatureView(config));
    if (!existsSync(this.d.layout.kubeconfig('admin.conf'))) return;
    const settings = featuresOf(config);
    const previous = await this.d.state.getFeatureStatus();
    let settled = true;
    for (const name of IMPLEMENTED_FEATURES) {
      // A settling pass leaves features that are ready (or off) to the next full pass.
      if (!full && previous[name]?.ready) continue;
      const status = await (full ? this.reconcileFeature(name, settings, config) : this.recheckFeature(name, settings, config)).catch(
        (err: Error): Omit<FeatureStatusRecord, 'updatedAt' | 'version'> => ({ enabled: settings[name].enabled, ready: false, message: `Failed to deploy ${name}: ${err.message}` }),
      );
      const record: FeatureStatusRecord = { ...status, version: this.featureVersion(name), updatedAt: new Date().toISOString() };
      if (!record.ready) settled = false;
      const old = previous[name];
      if (!old || old.enabled !== record.enabled || old.ready !== record.ready || old.message !== record.message || old.version !== record.version) {
        await this.d.state.putFeatureStatus(name, record);
        this.d.log.info('feature status', { feature: name, enabled: record.enabled, ready: record.ready, message: record.message });
      }
    }
    this.lastError = '';
    if (!settled && this.timer && !this.settling) {
      this.settling = setTimeout(() => {
        this.settling = undefined;
        void this.trigger(false);
      }, SETTLING_INTERVAL_MS);
    }
  }

  /** A settling pass of one feature: readiness of what was applied; a full pass of it once ready (its final message) or when nothing was applied yet. */
  private async recheckFeature(name: ImplementedFeature, settings: FeatureSettings, config: ClusterConfig): Promise<Omit<FeatureStatusRecord, 'updatedAt' | 'version'>> {
    const wanted = this.applied.get(name);
    if (wanted && settings[name].enabled) {
      const notReady = await this.readiness((await this.api()).objects, wanted);
      if (notReady) return { enabled: true, ready: false, message: `deploying: ${notReady}` };
    }
    return this.reconcileFeature(name, settings, config);
  }

  private featureVersion(name: ImplementedFeature): string {
    try {
      return this.d.layout.componentVersion(FEATURE_COMPONENT[name]);
    } catch {
      return 'unknown';
    }
  }

  private async reconcileFeature(name: ImplementedFeature, settings: FeatureSettings, config: ClusterConfig): Promise<Omit<FeatureStatusRecord, 'updatedAt' | 'version'>> {
    const { objects } = await this.api();
    if (!settings[name].enabled) {
      this.applied.delete(name);
      const removed = await this.prune(objects, name, new Set());
      if (removed) this.d.log.info('feature disabled: removed its objects', { feature: name, count: removed });
      if (name === 'load-balancer') await removeLoadBalancer(this.d.layout, this.d.log, this.d.node()!, settings['load-balancer']);
      return { enabled: false, ready: true, message: 'disabled' };
    }
    const ctx = this.manifestContext(settings);
    if (name === 'metrics-server') ctx.metricsServer = await this.metricsServerPki(objects, config);
    if (name === 'gateway') ctx.gatewayApi = loadGatewayApi(this.d.layout.componentBinary(GATEWAY_API_COMPONENT, GATEWAY_API_FILE));
    if (name === 'ingress') ctx.ingressTlsHash = await ingressTlsHash(objects, settings.ingress['default-tls-secret']);
    const wanted = featureObjects(name, ctx);
    let crdsServed = !wanted.some((o) => o.kind === 'CustomResourceDefinition');
    for (const obj of wanted) {
      // Objects after the CRDs a feature installs (they come first) wait until the API server serves them.
      if (!crdsServed && obj.kind !== 'CustomResourceDefinition') crdsServed = await waitForCrdsEstablished(objects, wanted);
      await this.apply(objects, obj);
    }
    await this.prune(objects, name, new Set(wanted.map(objectKey)));
    this.applied.set(name, wanted);
    const notReady = await this.readiness(objects, wanted);
    if (notReady) return { enabled: true, ready: false, message: `deploying: ${notReady}` };
    if (name === 'load-balancer') return { enabled: true, ...runLoadBalancer(this.d.node()!, this.d.layout, this.d.log, settings['load-balancer']) };
    if (name === 'ingress' || name === 'gateway') return { enabled: true, ready: true, message: await dataPlaneMessage(objects, name, ctx) };
    const message = {
      dns: `enabled at ${settings.dns['service-ip']}`,
      network: `enabled, pod CIDR ${config.podCidr}`,
      'local-storage': `enabled, volumes under ${localPathOnNode(ctx)}`,
      'metrics-server': 'enabled',
    }[name];
    return { enabled: true, ready: true, message };
  }

  /**
   * metrics-server's serving pair (kept from its Secret while valid, else issued anew) and the CA
   * bundle of the kubelets' serving certificates.
   */
  private async metricsServerPki(api: KubernetesObjectApi, config: ClusterConfig): Promise<MetricsServerPki> {
    const pki = await this.d.state!.getPki();
    const kubeletCa = pki?.cas[KUBELET_SERVING_CA];
    if (!kubeletCa) throw new Error('the CA of the kubelet serving certificates is not in the datastore');
    const policy = { keyType: config.keyType, clusterDomain: config.clusterDomain, certificates: { ...config.certificates, lifetimeMs: leafLifetimeMs(config) } };
    let pair: ServingPair | undefined;
    try {
      const live = (await api.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: METRICS_SERVER_TLS_SECRET, namespace: 'kube-system' } })) as KubernetesObject & { data?: Record<string, string> };
      const text = (k: string): string => Buffer.from(live.data?.[k] ?? '', 'base64').toString('utf8');
      pair = { cert: text('tls.crt'), key: text('tls.key'), ca: text('ca.crt') };
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
    }
    const problem = pair ? await servingPairProblem(this.d.crypto, pair, policy) : 'none issued yet';
    if (problem || !pair) {
      pair = await issueServingPair(this.d.crypto, policy);
      this.d.log.info('issued the metrics-server serving certificate', { reason: problem });
    }
    return { ...pair, kubeletCa: trustBundle(kubeletCa) };
  }

  /** Server-side apply with our field manager (forced: k8sd owns these objects). */
  private async apply(api: KubernetesObjectApi, obj: FeatureObject): Promise<void> {
    const { PatchStrategy } = await import('../kube-api.js');
    try {
      await api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (err) {
      // An immutable field changed (a Service's clusterIP after `k8s set dns.service-ip=…`, a
      // StorageClass's reclaimPolicy after `k8s set local-storage.reclaim-policy=…`): replace the object.
      if (apiStatus(err) === 422 && (obj.kind === 'Service' || obj.kind === 'StorageClass')) {
        await api.delete(obj).catch(() => undefined);
        await api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
        return;
      }
      throw new Error(`${obj.kind} ${obj.metadata?.name}: ${describe(err)}`);
    }
  }

  /** Deletes the feature's labelled objects that are not in `keep`; returns how many. */
  private async prune(api: KubernetesObjectApi, name: ImplementedFeature, keep: Set<string>): Promise<number> {
    let removed = 0;
    for (const k of FEATURE_KINDS[name]) {
      const list = await api.list(k.apiVersion, k.kind, k.namespace, undefined, undefined, undefined, undefined, `${FEATURE_LABEL}=${name}`).catch((err: unknown) => {
        // A kind whose CRD the feature owned and already removed (the Gateway API's): nothing left of it.
        if (apiStatus(err) === 404) return { items: [] };
        throw err;
      });
      for (const item of list.items) {
        const obj = { ...item, apiVersion: k.apiVersion, kind: k.kind };
        if (keep.has(objectKey(obj))) continue;
        try {
          await api.delete(obj, undefined, undefined, undefined, undefined, 'Foreground');
          removed++;
        } catch (err) {
          if (apiStatus(err) !== 404) throw err;
        }
      }
    }
    return removed;
  }

  /** Undefined when every workload of the feature is ready, else what is missing. */
  private async readiness(api: KubernetesObjectApi, wanted: FeatureObject[]): Promise<string | undefined> {
    for (const obj of wanted) {
      if (obj.kind !== 'Deployment' && obj.kind !== 'DaemonSet') continue;
      const live = (await api.read(obj as KubernetesObject & { metadata: { name: string; namespace: string } })) as KubernetesObject & { status?: Record<string, number> };
      const st = live.status ?? {};
      let missing: string | undefined;
      if (obj.kind === 'Deployment' && !((st.availableReplicas ?? 0) >= 1)) missing = `${obj.kind} ${obj.metadata?.name} has no available replica yet`;
      if (obj.kind === 'DaemonSet' && (!(st.desiredNumberScheduled ?? 0) || (st.numberReady ?? 0) < (st.desiredNumberScheduled ?? 0))) {
        missing = `${obj.kind} ${obj.metadata?.name}: ${st.numberReady ?? 0} of ${st.desiredNumberScheduled ?? 0} pods ready`;
      }
      if (missing) {
        const why = await this.podTrouble(api, obj).catch(() => undefined);
        return why ? `${missing} (${why})` : missing;
      }
    }
    return undefined;
  }

  /** Why the first of a workload's pods that is not ready is not: unschedulable, evicted, waiting. */
  private async podTrouble(api: KubernetesObjectApi, obj: FeatureObject): Promise<string | undefined> {
    const labels = (obj.spec as { selector?: { matchLabels?: Record<string, string> } } | undefined)?.selector?.matchLabels;
    if (!labels) return undefined;
    const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
    const pods = await api.list('v1', 'Pod', obj.metadata?.namespace, undefined, undefined, undefined, undefined, selector);
    for (const pod of pods.items as PodView[]) {
      const reason = podNotReadyReason(pod);
      if (reason) return `pod ${pod.metadata?.name}: ${reason}`;
    }
    return pods.items.length === 0 ? 'no pod created yet' : undefined;
  }
}

interface PodView extends KubernetesObject {
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
    containerStatuses?: Array<{ name: string; ready: boolean; state?: { waiting?: { reason?: string; message?: string } } }>;
  };
}

/** A short, human reason for a pod that is not ready, or undefined when it is. */
export function podNotReadyReason(pod: PodView): string | undefined {
  const st = pod.status ?? {};
  if (st.reason) return [st.reason, st.message].filter(Boolean).join(': '); // Evicted, NodeLost, …
  const unscheduled = st.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) return `not scheduled: ${unscheduled.message ?? unscheduled.reason ?? 'no reason given'}`;
  const waiting = st.containerStatuses?.find((c) => c.state?.waiting);
  if (waiting) return `container ${waiting.name} waiting: ${[waiting.state?.waiting?.reason, waiting.state?.waiting?.message].filter(Boolean).join(': ')}`;
  const ready = st.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'True') return undefined;
  const notReady = st.containerStatuses?.find((c) => !c.ready);
  if (notReady) return `container ${notReady.name} running but not ready (readiness probe)`;
  return st.phase ? `phase ${st.phase}` : undefined;
}

function objectKey(o: KubernetesObject): string {
  return `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function describe(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return (err as Error).message;
}
