// POST /1.0/k8sd/members/promote (cluster API): the joining control-plane node, once its etcd learner runs.
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handlePromote } from '../../membership/join-server.js';

export function memberPromoteRoute(m: MembershipContext): Route {
  return { ...at(peer.memberPromote), handler: (req) => handlePromote(m, req) };
}
