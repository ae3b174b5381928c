// POST /1.0/k8sd/secrets-encryption/rotate: a new key on every control-plane node, then (unless told not
// to) every Secret re-encrypted.
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { rotateEncryptionKey } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function rotateEncryptionKeyRoute(d: NodeContext, manager: SecurityManager): Route {
  return {
    ...at(local.rotateEncryptionKey),
    handler: async (req) => rotateEncryptionKey(d, manager, parseRequest(local.rotateEncryptionKey, req.body).reencrypt !== false),
  };
}
