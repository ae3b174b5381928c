// POST /1.0/k8sd/worker/certificates/renew: a worker renews its certificates through the control plane (for
// refresh-certs and automatic renewal).
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, ApiError, type Route } from '../../http.js';
import { WORKER_CLIENT_CERTS } from '../../membership/join-messages.js';
import { renewWorkerCertificates, type WorkerCertificate } from '../../membership/worker-certificates.js';
import type { NodeContext } from '../../node-context.js';

export function renewWorkerCertificatesRoute(d: NodeContext): Route {
  return {
    ...at(local.renewWorkerCertificates),
    handler: async (req) => {
      const wanted = parseRequest(local.renewWorkerCertificates, req.body).certificates ?? [...WORKER_CLIENT_CERTS, 'kubelet'];
      const valid: WorkerCertificate[] = [...WORKER_CLIENT_CERTS, 'kubelet'];
      if (!Array.isArray(wanted) || !wanted.length || !wanted.every((c) => valid.includes(c as WorkerCertificate))) {
        throw new ApiError(400, `certificates must be a list of ${valid.join(', ')}`);
      }
      return renewWorkerCertificates(d, wanted as WorkerCertificate[]);
    },
  };
}
