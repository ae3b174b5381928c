// POST /1.0/k8sd/secrets-encryption/keys/stage (cluster API): this node holds the new key, not yet writing
// with it. Only control-plane members may call it (checked against the node records in etcd).
import { peer } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { keyChangeBody, requireKeyHolderCaller, thisNodeKeys } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionKeysStageRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(peer.encryptionKeysStage),
    handler: async (req) => {
      await requireKeyHolderCaller(d, req);
      const { keys, keyId } = keyChangeBody(peer.encryptionKeysStage, req);
      return thisNodeKeys(d, manager).stage(keys, keyId);
    },
  };
}
