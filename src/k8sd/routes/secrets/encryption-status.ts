// GET /1.0/k8sd/secrets-encryption: the provider, the write key, and every control-plane node's keys.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { encryptionStatus } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function encryptionStatusRoute(d: NodeContext, manager: SecurityManager): Route {
  return { ...at(local.encryptionStatus), handler: async () => encryptionStatus(d, manager) };
}
