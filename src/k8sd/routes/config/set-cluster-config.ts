// PUT /1.0/k8sd/cluster/config: applies key=value changes to the cluster settings, validated as a whole.
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';
import { setClusterConfig } from '../../features/cluster-config.js';
import type { NodeContext } from '../../node-context.js';

export function setClusterConfigRoute(d: NodeContext, featuresChanged: () => void): Route {
  return { ...at(local.setClusterConfig), handler: async (req) => setClusterConfig(d, parseRequest(local.setClusterConfig, req.body).changes, featuresChanged) };
}
