// POST /1.0/k8sd/cluster: bootstraps a cluster on this node, streaming the steps. The daemon runs the
// bootstrap: it adopts the new datastore and brings the node up as clustered.
import type { ServerResponse } from 'node:http';
import { local, type ParsedRequestOf } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';

/** What the route asks of the node: the daemon is one. */
export interface BootstrappingNode {
  bootstrapCluster(request: ParsedRequestOf<typeof local.bootstrap>, res: ServerResponse): Promise<undefined>;
}

export function bootstrapRoute(d: BootstrappingNode): Route {
  return { ...at(local.bootstrap), handler: async (req, res) => d.bootstrapCluster(parseRequest(local.bootstrap, req.body), res) };
}
