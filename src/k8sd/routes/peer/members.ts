// GET /1.0/k8sd/members (cluster API): the control-plane nodes and API server endpoints.
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleMembers } from '../../membership/join-server.js';

export function membersRoute(m: MembershipContext): Route {
  return { ...at(peer.members), handler: () => handleMembers(m) };
}
