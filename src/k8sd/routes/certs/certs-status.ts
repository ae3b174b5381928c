// GET /1.0/k8sd/certs-status: every certificate of this node, its issuer and expiry.
import { local } from '../../../api/index.js';
import { at, ApiError, type Route } from '../../http.js';
import { inventory } from '../../certs/inventory.js';
import type { NodeContext } from '../../node-context.js';

export function certsStatusRoute(d: NodeContext): Route {
  return {
    ...at(local.certsStatus),
    handler: async () => {
      const node = d.node();
      if (!node) throw new ApiError(409, 'this node is not part of a cluster');
      return { node: node.name, role: node.role, certificates: inventory(d.layout, d.crypto, node.role) };
    },
  };
}
