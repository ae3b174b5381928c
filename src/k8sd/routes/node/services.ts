// GET /1.0/k8sd/services: the state of each of this node's installed services.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { StatusSources } from '../../status.js';

export function servicesRoute(d: Pick<StatusSources, 'serviceStates'>): Route {
  return { ...at(local.services), handler: async () => d.serviceStates() };
}
