// POST /1.0/k8sd/cluster/join: joins this node to a cluster with a token, streaming the steps.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleJoinCluster } from '../../membership/join-flow.js';

export function joinRoute(m: MembershipContext): Route {
  return { ...at(local.join), handler: (req, res) => handleJoinCluster(m, req, res) };
}
