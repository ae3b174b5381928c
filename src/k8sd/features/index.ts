// Features: the controller on control-plane nodes, and the API behind `k8s enable|disable|set|get`
// (PUT/GET /1.0/k8sd/cluster/config, Canonical Kubernetes' endpoint) and the status lines.
import { applyFeatureChanges, FeatureConfigError, FEATURE_NAMES, flattenFeatureSettings, selectFeatureSettings } from '../../config/features.js';
import { featuresOf, FeatureStatusRecord } from '../../datastore/state.js';
import type { K8sd } from '../daemon.js';
import { ApiError } from '../http.js';
import { FeatureController } from './controller.js';
import { stopNetworkPolicies } from './node.js';

export interface FeatureStatus extends FeatureStatusRecord {
  name: string;
}

let controller: FeatureController | undefined;

async function requireConfig(d: K8sd) {
  d.requireControlPlane();
  if (!d.state) throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status"');
  const config = await d.state.getConfig();
  if (!config) throw new ApiError(503, 'the datastore holds no cluster configuration');
  return config;
}

/** Each feature's recorded status, in Canonical Kubernetes' order (features this release lacks: disabled). */
export async function featureStatuses(d: K8sd): Promise<FeatureStatus[]> {
  if (!d.state) return [];
  const config = await d.state.getConfig();
  if (!config) return [];
  const settings = flattenFeatureSettings(featuresOf(config));
  const recorded = await d.state.getFeatureStatus();
  return FEATURE_NAMES.map((name) => {
    const enabled = settings[`${name}.enabled`] === true;
    const r = recorded[name];
    if (r && r.enabled === enabled) return { name, ...r };
    return { name, enabled, ready: !enabled, message: enabled ? 'deploying' : 'disabled', version: r?.version ?? '', updatedAt: r?.updatedAt ?? '' };
  });
}

export function registerFeatures(d: K8sd): void {
  d.extraLocalRoutes.push(
    {
      method: 'GET',
      path: '/1.0/k8sd/cluster/config',
      handler: async (req) => {
        const config = await requireConfig(d);
        try {
          return { settings: selectFeatureSettings(featuresOf(config), req.query.get('key') ?? undefined) };
        } catch (err) {
          if (err instanceof FeatureConfigError) throw new ApiError(400, err.message);
          throw err;
        }
      },
    },
    {
      method: 'PUT',
      path: '/1.0/k8sd/cluster/config',
      handler: async (req) => {
        const body = req.body as { changes?: unknown } | undefined;
        const changes = body?.changes;
        if (!changes || typeof changes !== 'object' || Array.isArray(changes) || !Object.keys(changes).length) {
          throw new ApiError(400, 'give at least one key=value change, such as dns.enabled=true');
        }
        const config = await requireConfig(d);
        let next;
        try {
          next = applyFeatureChanges(featuresOf(config), changes as Record<string, unknown>, { serviceCidr: config.serviceCidr });
        } catch (err) {
          if (err instanceof FeatureConfigError) throw new ApiError(400, `${err.message}; nothing was changed`);
          throw err;
        }
        await d.state!.putConfig({ ...config, features: next, clusterDomain: next.dns['cluster-domain'], dnsServiceIp: next.dns['service-ip'] });
        d.log.info('cluster config changed', { changes: Object.keys(changes) });
        void controller?.trigger();
        return { settings: flattenFeatureSettings(next) };
      },
    },
    { method: 'GET', path: '/1.0/k8sd/features', handler: async () => ({ features: await featureStatuses(d) }) },
  );
  d.onClustered.push(async (node) => {
    if (node.role !== 'control-plane') return;
    controller ??= new FeatureController(d);
    controller.start();
  });
  d.onStop.push(async () => {
    controller?.stop();
    stopNetworkPolicies(d.layout.root);
  });
}
