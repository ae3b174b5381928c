// Local API: cluster settings (feature keys, etcd-snapshot keys) and feature states.
import { endpoint, noBody } from './endpoint.js';
import type { FeatureStatus } from './node.js';

/** Query: `key` selects all settings, one feature's, or one value. */
export const getClusterConfig = endpoint<{ settings: unknown }>()({ method: 'GET', path: '/1.0/k8sd/cluster/config', request: noBody });
/** Applies key=value changes, validated as a whole: nothing changes on error. */
export const setClusterConfig = endpoint<{ settings: Record<string, unknown> }>()({
  method: 'PUT',
  path: '/1.0/k8sd/cluster/config',
  request: (z) => z.object({ changes: z.record(z.string(), z.unknown()).optional() }),
});
export const features = endpoint<{ features: FeatureStatus[] }>()({ method: 'GET', path: '/1.0/k8sd/features', request: noBody });
