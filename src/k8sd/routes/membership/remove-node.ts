// POST /1.0/k8sd/cluster/remove: removes a node (or this one) from the cluster.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleRemove } from '../../membership/remove.js';

export function removeNodeRoute(m: MembershipContext): Route {
  return { ...at(local.removeNode), handler: (req, res) => handleRemove(m, req, res) };
}
