// Adapter between k8sd and the security modules: audit policy, admission configuration
// (Pod Security, EventRateLimit) and encryption at rest through k8sd's KMS v2 plugin.
import { encryptionPaths, readAesgcmKeys, SecurityManager } from '../security/index.js';
import { readFileSync } from 'node:fs';
import { SecurityProvider } from './flows/bootstrap.js';
import { at, ApiError } from './http.js';
import { local } from '../api/index.js';
import { parseRequest } from '../api/parse.js';
import { coreApi } from './kube.js';
import type { ModuleRegistry, NodeContext } from './node-context.js';
import { clusterKeyStatus, rotateClusterKey, secretsRotationClusterRoutes, waitForEncryptionConfig } from './secrets-rotation.js';

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
 * the others (src/k8sd/secrets-rotation.ts).
 */
export function registerSecretsEncryption(d: NodeContext & ModuleRegistry, manager: SecurityManager): void {
  const config = async () => {
    d.requireControlPlane();
    const c = await d.state?.getConfig();
    if (!c) throw new ApiError(503, 'the datastore is not connected yet; retry in a few seconds');
    return c;
  };
  const core = () => coreApi(d.layout.kubeconfig('admin.conf'));
  const reencrypt = async (c: Awaited<ReturnType<typeof config>>) => {
    // aesgcm: the apiserver must run with the current write key, or the rewrite keeps the old one.
    // (KMS: manager.reencrypt waits for the apiserver to adopt the current KEK itself.)
    if (c.secretsEncryption === 'aesgcm' && readAesgcmKeys(encryptionPaths(d.layout).configFile).length > 0) {
      await waitForEncryptionConfig(d, readFileSync(encryptionPaths(d.layout).configFile, 'utf8'));
    }
    const report = await manager.reencrypt(c, await core());
    return { rewritten: report.rewritten, failed: report.failed.length };
  };
  d.extraLocalRoutes.push(
    {
      ...at(local.encryptionStatus),
      handler: async () => {
        const c = await config();
        const cluster = await clusterKeyStatus(d, manager, c);
        return { ...manager.status(c), ...(cluster ? { controlPlane: cluster } : {}) };
      },
    },
    {
      ...at(local.rotateEncryptionKey),
      handler: async (req) => {
        const wanted = parseRequest(local.rotateEncryptionKey, req.body).reencrypt !== false;
        return d.lock.run('key rotation', async () => {
          const c = await config();
          const rotated = await rotateClusterKey(d, manager, c);
          return { ...rotated, ...(wanted ? await reencrypt(c) : {}) };
        });
      },
    },
    { ...at(local.reencryptSecrets), handler: async () => reencrypt(await config()) },
  );
  d.extraClusterRoutes.push(...secretsRotationClusterRoutes(d, manager));
}
