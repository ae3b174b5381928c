// POST /1.0/k8sd/members/leave (cluster API): a control-plane node tells a removed node to clean up.
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleLeave } from '../../membership/remove.js';

export function memberLeaveRoute(m: MembershipContext): Route {
  return { ...at(peer.memberLeave), caller: 'control-plane', handler: (req, res) => handleLeave(m, req, res) };
}
