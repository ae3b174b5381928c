// The cluster settings behind `k8s enable|disable|set|get` (GET/PUT /1.0/k8sd/cluster/config,
// routes/config/): feature keys and etcd-snapshot keys, read and changed on a control-plane node;
// and each feature's recorded status.
import { applyFeatureChanges, FeatureConfigError, FEATURE_NAMES, flattenFeatureSettings, selectFeatureSettings } from '../../config/features.js';
import { featuresOf } from '../../datastore/state.js';
import type { NodeContext } from '../node-context.js';
import { ApiError } from '../http.js';
import { applySnapshotChanges, flattenSnapshotSettings, isSnapshotKey, SnapshotConfigError } from '../../snapshots/schedule.js';
import { snapshotSettingsOf } from '../snapshots.js';
import { snapshotSettingsChanged } from '../snapshots-module.js';
import type { FeatureStatus } from '../../api/index.js';

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

/** The settings `key` selects: all of them, one feature's, or one value. */
export async function getClusterConfig(d: NodeContext, key: string | undefined): Promise<{ settings: unknown }> {
  const config = await requireConfig(d);
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
}

/** Applies key=value changes, validated as a whole: nothing changes on error. `featuresChanged`: the feature controller's trigger. */
export async function setClusterConfig(d: NodeContext, changes: Record<string, unknown> | undefined, featuresChanged: () => void): Promise<{ settings: Record<string, unknown> }> {
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
  if (Object.keys(featureChanges).length) featuresChanged();
  if (Object.keys(snapshotChanges).length) snapshotSettingsChanged();
  return { settings: { ...flattenFeatureSettings(next), ...flattenSnapshotSettings(snapshot) } };
}
