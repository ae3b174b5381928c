// POST /1.0/k8sd/ca-rotation/check (cluster API): the orchestrating node's check before a CA rotation.
// Served by every node, workers too, so the route checks its caller itself.
import { peer } from '../../../api/index.js';
import { at, type Request, type Route } from '../../http.js';
import type { CertsNode } from '../../certs/node.js';
import { clusteredNode, rotationCheck, type CheckReply } from '../../certs/rotate-ca.js';
import { requireControlPlaneCaller } from '../../cluster/peer-auth.js';

export function caRotationCheckRoute(d: CertsNode): Route {
  return {
    ...at(peer.caRotationCheck),
    caller: 'control-plane',
    handler: async (req: Request): Promise<CheckReply> => {
      await requireControlPlaneCaller(d, req, 'take part in a CA rotation');
      return rotationCheck(d, clusteredNode(d));
    },
  };
}
