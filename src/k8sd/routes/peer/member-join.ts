// POST /1.0/k8sd/members/join (cluster API): a joining node; untrusted, authenticated by its join token.
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleJoin } from '../../membership/join-server.js';

export function memberJoinRoute(m: MembershipContext): Route {
  return { ...at(peer.memberJoin), untrusted: true, handler: (req) => handleJoin(m, req) };
}
