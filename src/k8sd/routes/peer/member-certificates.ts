// POST /1.0/k8sd/members/certificates (cluster API): a worker renewing its client certificates (CSRs).
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { MembershipContext } from '../../membership/context.js';
import { handleCertificates } from '../../membership/join-server.js';

export function memberCertificatesRoute(m: MembershipContext): Route {
  return { ...at(peer.memberCertificates), handler: (req) => handleCertificates(m, req) };
}
