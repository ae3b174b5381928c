// Features: the controller on control-plane nodes, and the API behind `k8s enable|disable|set|get`
// (PUT/GET /1.0/k8sd/cluster/config, Canonical Kubernetes' endpoint) and the status lines.
import { applyFeatureChanges, FeatureConfigError, FEATURE_NAMES, flattenFeatureSettings, selectFeatureSettings } from '../../config/features.js';
import { featuresOf } from '../../datastore/state.js';
import type { ModuleRegistry, NodeContext } from '../node-context.js';
import { at, ApiError } from '../http.js';
import { FeatureController } from './controller.js';
import { stopNetworkPolicies } from './node.js';
import { stopLoadBalancer } from './load-balancer.js';
import { applySnapshotChanges, flattenSnapshotSettings, isSnapshotKey, SnapshotConfigError } from '../../snapshots/schedule.js';
import { snapshotSettingsChanged, snapshotSettingsOf } from '../snapshots.js';
import { local, type FeatureStatus } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';

export type { FeatureStatus };

let controller: FeatureController | undefined;

async function requireConfig(d: NodeContext) {
  d.requireControlPlane();
  if (!d.state) throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status"');
  const config = await d.state.getConfig();
  if (!config) throw new ApiError(503, 'the datastore holds no cluster configuration');
  return config;
}

/** Each feature's recorded status, in Canonical Kubernetes' order (features this release lacks: disabled). */
export async function featureStatuses(d: Pick<NodeContext, 'state'>): Promise<FeatureStatus[]> {
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

export function registerFeatures(d: NodeContext & ModuleRegistry): void {
  d.extraLocalRoutes.push(
    {
      ...at(local.getClusterConfig),
      handler: async (req) => {
        const config = await requireConfig(d);
        const key = req.query.get('key') ?? undefined;
        const snapshot = flattenSnapshotSettings(snapshotSettingsOf(config));
        if (key !== undefined && isSnapshotKey(key)) {
          if (key in snapshot) return { settings: snapshot[key] };
          if (key === 'etcd-snapshot') return { settings: Object.fromEntries(Object.entries(snapshot).map(([k, v]) => [k.slice('etcd-snapshot.'.length), v])) };
          throw new ApiError(400, `${key}: unknown key; etcd-snapshot has ${Object.keys(snapshot).join(', ')}`);
        }
        try {
          const features = selectFeatureSettings(featuresOf(config), key);
          return { settings: key === undefined ? { ...(features as Record<string, unknown>), ...snapshot } : features };
        } catch (err) {
          if (err instanceof FeatureConfigError) throw new ApiError(400, err.message);
          throw err;
        }
      },
    },
    {
      ...at(local.setClusterConfig),
      handler: async (req) => {
        const { changes } = parseRequest(local.setClusterConfig, req.body);
        if (!changes || typeof changes !== 'object' || Array.isArray(changes) || !Object.keys(changes).length) {
          throw new ApiError(400, 'give at least one key=value change, such as dns.enabled=true');
        }
        const config = await requireConfig(d);
        const all = Object.entries(changes as Record<string, unknown>);
        const featureChanges = Object.fromEntries(all.filter(([k]) => !isSnapshotKey(k)));
        const snapshotChanges = Object.fromEntries(all.filter(([k]) => isSnapshotKey(k)));
        let next;
        let snapshot;
        try {
          next = applyFeatureChanges(featuresOf(config), featureChanges, { serviceCidr: config.serviceCidr });
          snapshot = applySnapshotChanges(snapshotSettingsOf(config), snapshotChanges);
        } catch (err) {
          if (err instanceof FeatureConfigError || err instanceof SnapshotConfigError) throw new ApiError(400, `${err.message}; nothing was changed`);
          throw err;
        }
        await d.state!.putConfig({
          ...config,
          features: next,
          clusterDomain: next.dns['cluster-domain'],
          dnsServiceIp: next.dns['service-ip'],
          ...(Object.keys(snapshotChanges).length ? { etcdSnapshot: snapshot } : {}),
        });
        d.log.info('cluster config changed', { changes: Object.keys(changes) });
        if (Object.keys(featureChanges).length) void controller?.trigger();
        if (Object.keys(snapshotChanges).length) snapshotSettingsChanged();
        return { settings: { ...flattenFeatureSettings(next), ...flattenSnapshotSettings(snapshot) } };
      },
    },
    { ...at(local.features), handler: async () => ({ features: await featureStatuses(d) }) },
  );
  d.onClustered.push(async (node) => {
    if (node.role !== 'control-plane') return;
    controller ??= new FeatureController(d);
    controller.start();
  });
  d.onStop.push(async () => {
    controller?.stop();
    stopNetworkPolicies(d.layout.root);
    stopLoadBalancer(d.layout.root);
  });
}
