// POST /1.0/k8sd/cluster/tokens: a join token, shown once (control-plane nodes only).
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { createToken } from '../../membership/tokens-api.js';

export function issueTokenRoute(m: MembershipContext): Route {
  return { ...at(local.issueToken), handler: (req) => createToken(m, req) };
}
