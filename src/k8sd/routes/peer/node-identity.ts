// GET /1.0 (cluster API): who answers, for any member.
import { peer } from '../../../api/index.js';
import type { LocalNodeState } from '../../../datastore/state.js';
import { at, type Route } from '../../http.js';

export function nodeIdentityRoute(node: Pick<LocalNodeState, 'name' | 'role'>): Route {
  return { ...at(peer.nodeIdentity), handler: async () => ({ name: node.name, role: node.role }) };
}
