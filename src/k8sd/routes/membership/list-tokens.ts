// GET /1.0/k8sd/cluster/tokens: the open join tokens (names, roles, expiry; never secrets).
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { listTokens } from '../../membership/tokens-api.js';

export function listTokensRoute(m: MembershipContext): Route {
  return { ...at(local.listTokens), handler: () => listTokens(m) };
}
