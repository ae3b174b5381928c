// POST /1.0/k8sd/refresh-certs/run: re-issues this node's certificates (a worker's through the control
// plane).
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, ApiError, type Route } from '../../http.js';
import type { CertsNode, RenewWorkerCertificates } from '../../certs/node.js';
import { refreshControlPlane } from '../../certs/refresh.js';
import { refreshWorker } from '../../certs/renewal.js';

export function refreshCertsRoute(d: CertsNode, renewWorker: RenewWorkerCertificates): Route {
  return {
    ...at(local.refreshCerts),
    handler: async (req) => {
      const b = parseRequest(local.refreshCerts, req.body);
      if (b.expirationSeconds !== undefined && !(b.expirationSeconds >= 60)) throw new ApiError(400, 'expires-in must be at least 1m');
      if (d.node()?.role === 'worker') return refreshWorker(d, renewWorker, b.certificates);
      return refreshControlPlane(d, {
        ...(b.certificates?.length ? { certificates: b.certificates } : {}),
        ...(b.expirationSeconds ? { lifetimeMs: b.expirationSeconds * 1000 } : {}),
        ...(b.extraSANs?.length ? { extraSans: b.extraSANs } : {}),
      });
    },
  };
}
