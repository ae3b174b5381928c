// GET /1.0/k8sd/datastore: the datastore's members and their health.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { datastoreReport, type StatusSources } from '../../status.js';

export function datastoreRoute(d: StatusSources): Route {
  return { ...at(local.datastore), handler: async () => datastoreReport(d) };
}
