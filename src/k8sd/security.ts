// Adapter between k8sd and the security modules: audit policy, admission configuration
// (Pod Security, EventRateLimit) and encryption at rest through k8sd's KMS v2 plugin.
import { SecurityManager } from '../security/index.js';
import { SecurityProvider } from './flows/bootstrap.js';
import type { ModuleRegistry, NodeContext } from './node-context.js';
import { encryptionStatusRoute } from './routes/secrets/encryption-status.js';
import { rotateEncryptionKeyRoute } from './routes/secrets/rotate-encryption-key.js';
import { reencryptSecretsRoute } from './routes/secrets/reencrypt-secrets.js';
import { encryptionKeysGetRoute } from './routes/peer/encryption-keys-get.js';
import { encryptionKeysSummaryRoute } from './routes/peer/encryption-keys-summary.js';
import { encryptionKeysStageRoute } from './routes/peer/encryption-keys-stage.js';
import { encryptionKeysActivateRoute } from './routes/peer/encryption-keys-activate.js';
import { encryptionKeysDiscardRoute } from './routes/peer/encryption-keys-discard.js';

export function createSecurityProvider(d: NodeContext): SecurityProvider & { manager: SecurityManager } {
  const manager = new SecurityManager({
    layout: d.layout,
    crypto: d.crypto,
    logger: { info: (m, f) => d.log.info(m, f ?? {}), warn: (m, f) => d.log.warn(m, f ?? {}), error: (m, f) => d.log.error(m, f ?? {}) },
  });
  return {
    manager,
    files: async (config) => manager.files(config),
    apiserverArgs: (config) => manager.apiserverArgs(config),
    beforeApiserver: async (config) => manager.beforeApiserver(config),
    stop: async () => manager.stop(),
  };
}

/**
 * `k8s secrets-encryption status | rotate | reencrypt` on the local API, and the cluster-API
 * routes through which the rotating control-plane node stages and activates the new key on
 * the others (src/k8sd/secrets-rotation.ts); each route is a file of routes/secrets/ or routes/peer/.
 */
export function registerSecretsEncryption(d: NodeContext & ModuleRegistry, manager: SecurityManager): void {
  d.extraLocalRoutes.push(encryptionStatusRoute(d, manager), rotateEncryptionKeyRoute(d, manager), reencryptSecretsRoute(d, manager));
  d.extraClusterRoutes.push(
    encryptionKeysGetRoute(d, manager),
    encryptionKeysSummaryRoute(d, manager),
    encryptionKeysStageRoute(d, manager),
    encryptionKeysActivateRoute(d, manager),
    encryptionKeysDiscardRoute(d, manager),
  );
}
