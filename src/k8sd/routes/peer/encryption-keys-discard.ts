// POST /1.0/k8sd/secrets-encryption/keys/discard (cluster API): drops a staged key (a rotation's undo).
// Only control-plane members may call it (checked against the node records in etcd).
import { peer } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { requireKeyHolderCaller, thisNodeKeys } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionKeysDiscardRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(peer.encryptionKeysDiscard),
    handler: async (req) => {
      await requireKeyHolderCaller(d, req);
      const { keyId } = parseRequest(peer.encryptionKeysDiscard, req.body);
      return thisNodeKeys(d, manager).discard(keyId);
    },
  };
}
