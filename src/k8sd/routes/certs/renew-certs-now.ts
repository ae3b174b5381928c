// POST /1.0/k8sd/certs/renew-now: runs the renewal controller's check now.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { RenewalController } from '../../certs/renewal.js';

export function renewCertsNowRoute(renewal: Pick<RenewalController, 'check'>): Route {
  return { ...at(local.renewCertsNow), handler: async () => ({ renewed: await renewal.check() }) };
}
