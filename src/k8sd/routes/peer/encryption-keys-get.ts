// GET /1.0/k8sd/secrets-encryption/keys (cluster API): this node's encryption keys, for a rotating
// control-plane node. Only control-plane members may call it (checked against the node records in etcd).
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { requireKeyHolderCaller, thisNodeKeys } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionKeysGetRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(peer.encryptionKeysGet),
    handler: async (req) => {
      await requireKeyHolderCaller(d, req);
      return { keys: await thisNodeKeys(d, manager).keys() };
    },
  };
}
