// POST /1.0/k8sd/secrets-encryption/reencrypt: every Secret rewritten with the current write key.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { clusterConfig, reencryptSecrets } from '../../secrets-rotation.js';
import type { SecurityManager } from '../../../security/index.js';

export function reencryptSecretsRoute(d: NodeContext, manager: SecurityManager): Route {
  return { ...at(local.reencryptSecrets), handler: async () => reencryptSecrets(d, manager, await clusterConfig(d)) };
}
