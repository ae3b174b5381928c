// Adapter between k8sd and the security modules: audit policy, admission configuration
// (Pod Security, EventRateLimit) and encryption at rest through k8sd's KMS v2 plugin.
import { commitFileSet } from '../host/files.js';
import { SecurityManager } from '../security/index.js';
import { SecurityProvider } from './flows/bootstrap.js';
import { ApiError } from './http.js';
import { coreApi } from './kube.js';
import type { K8sd } from './daemon.js';

export function createSecurityProvider(d: K8sd): SecurityProvider & { manager: SecurityManager } {
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

/** `k8s secrets-encryption status | rotate | reencrypt`. */
export function registerSecretsEncryption(d: K8sd, manager: SecurityManager): void {
  const config = async () => {
    d.requireControlPlane();
    const c = await d.state?.getConfig();
    if (!c) throw new ApiError(503, 'the datastore is not connected yet; retry in a few seconds');
    return c;
  };
  const core = () => coreApi(d.layout.kubeconfig('admin.conf'));
  d.extraLocalRoutes.push(
    { method: 'GET', path: '/1.0/k8sd/secrets-encryption', handler: async () => manager.status(await config()) },
    {
      method: 'POST',
      path: '/1.0/k8sd/secrets-encryption/rotate',
      handler: async (req) => {
        const c = await config();
        const { keyId, files } = await manager.rotate(c);
        if (files.length) commitFileSet(files, d.layout.k8sdStateDir);
        d.log.info('rotated the secrets encryption key', { keyId });
        const reencrypt = (req.body as { reencrypt?: boolean }).reencrypt !== false;
        const report = reencrypt ? await manager.reencrypt(c, await core()) : undefined;
        return { keyId, ...(report ? { rewritten: report.rewritten, failed: report.failed.length } : {}) };
      },
    },
    {
      method: 'POST',
      path: '/1.0/k8sd/secrets-encryption/reencrypt',
      handler: async () => {
        const report = await manager.reencrypt(await config(), await core());
        return { rewritten: report.rewritten, failed: report.failed.length };
      },
    },
  );
}
