// GET /1.0/k8sd/features: each feature's recorded status.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { featureStatuses } from '../../features/cluster-config.js';
import type { NodeContext } from '../../node-context.js';

export function featuresRoute(d: Pick<NodeContext, 'state'>): Route {
  return { ...at(local.features), handler: async () => ({ features: await featureStatuses(d) }) };
}
