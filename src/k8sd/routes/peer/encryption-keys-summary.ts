// GET /1.0/k8sd/secrets-encryption/keys/summary (cluster API): which keys this node holds and writes with
// (no key material). Only control-plane members may call it (checked against the node records in etcd).
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { requireKeyHolderCaller, thisNodeKeys } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionKeysSummaryRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(peer.encryptionKeysSummary),
    handler: async (req) => {
      await requireKeyHolderCaller(d, req);
      return thisNodeKeys(d, manager).summary();
    },
  };
}
