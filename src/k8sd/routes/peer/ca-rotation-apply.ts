// POST /1.0/k8sd/ca-rotation/apply (cluster API): the orchestrating node has this node apply a phase of a
// CA rotation. Served by every node, workers too, so the route checks its caller itself.
import { peer } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Request, type Route } from '../../http.js';
import type { CertsNode, RenewWorkerCertificates } from '../../certs/node.js';
import { applyPhase, clusteredNode } from '../../certs/rotate-ca.js';
import { requireControlPlaneCaller } from '../../cluster/peer-auth.js';

/** `exclusive`: one CA rotation step at a time on this node (certs/index.ts). */
export function caRotationApplyRoute(d: CertsNode, renewWorker: RenewWorkerCertificates, exclusive: <T>(f: () => Promise<T>) => Promise<T>): Route {
  return {
    ...at(peer.caRotationApply),
    caller: 'control-plane',
    handler: async (req: Request) => {
      await requireControlPlaneCaller(d, req, 'take part in a CA rotation');
      const n = clusteredNode(d);
      return applyPhase(d, renewWorker, exclusive, n, parseRequest(peer.caRotationApply, req.body));
    },
  };
}
