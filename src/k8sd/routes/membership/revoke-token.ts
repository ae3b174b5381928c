// POST /1.0/k8sd/cluster/tokens/revoke: drops an open join token.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { revokeToken } from '../../membership/tokens-api.js';

export function revokeTokenRoute(m: MembershipContext): Route {
  return { ...at(local.revokeToken), handler: (req) => revokeToken(m, req) };
}
