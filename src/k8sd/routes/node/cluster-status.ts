// GET /1.0/k8sd/cluster: `k8s status` (readiness, membership, datastore, versions, services, features).
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { clusterStatus, type StatusSources } from '../../status.js';

export function clusterStatusRoute(d: StatusSources): Route {
  return { ...at(local.clusterStatus), handler: async () => clusterStatus(d) };
}
