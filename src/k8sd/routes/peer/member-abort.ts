// POST /1.0/k8sd/members/abort (cluster API): the joining control-plane node, when its join fails.
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleAbort } from '../../membership/join-server.js';

export function memberAbortRoute(m: MembershipContext): Route {
  return { ...at(peer.memberAbort), handler: (req) => handleAbort(m, req) };
}
