// GET /1.0/k8sd/cluster/config: the cluster settings (feature and etcd-snapshot keys); query `key` selects
// all, one feature's, or one value.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { getClusterConfig } from '../../features/cluster-config.js';
import type { NodeContext } from '../../node-context.js';

export function getClusterConfigRoute(d: NodeContext): Route {
  return { ...at(local.getClusterConfig), handler: async (req) => getClusterConfig(d, req.query.get('key') ?? undefined) };
}
