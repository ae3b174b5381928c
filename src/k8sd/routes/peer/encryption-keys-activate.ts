// POST /1.0/k8sd/secrets-encryption/keys/activate (cluster API): this node writes with the staged key. Only
// control-plane members may call it (checked against the node records in etcd).
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { keyChangeBody, requireKeyHolderCaller, thisNodeKeys } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionKeysActivateRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(peer.encryptionKeysActivate),
    handler: async (req) => {
      await requireKeyHolderCaller(d, req);
      const { keys, keyId } = keyChangeBody(peer.encryptionKeysActivate, req);
      return thisNodeKeys(d, manager).activate(keys, keyId);
    },
  };
}
