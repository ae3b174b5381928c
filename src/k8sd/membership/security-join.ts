// Encryption-at-rest keys a joining control-plane node needs to read what the others wrote:
// the KMS v2 KEK ring (k8sd's KMS plugin) or the aesgcm EncryptionConfiguration. They travel
// in the join reply (pinned mTLS, never logged) through the membership join-payload hooks.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../../host/files.js';
import { encryptionPaths, KekRingDocument, kmsPaths, SecurityManager } from '../../security/index.js';
import type { SecurityProvider } from '../flows/bootstrap.js';
import type { NodeContext } from '../node-context.js';
import { registerJoinPayload, registerLeaveHook } from './extensions.js';

export function registerSecurityJoinPayloads(d: Pick<NodeContext, 'layout'> & { security: SecurityProvider }): void {
  const manager = (d.security as SecurityProvider & { manager?: SecurityManager }).manager;
  if (!manager) return;
  const l = d.layout;
  const discardKeys = async (): Promise<void> => {
    await manager.stop();
    rmSync(kmsPaths(l).ringFile, { force: true });
    rmSync(encryptionPaths(l).configFile, { force: true });
  };
  registerJoinPayload({
    key: 'kms-kek-ring',
    export: async () => {
      try {
        return manager.exportKekRing();
      } catch {
        return undefined; // not using KMS
      }
    },
    // Starts this node's KMS plugin on the cluster's ring, before the apiserver needs it.
    import: async (data, { config }) => manager.beforeApiserver(config, { kekRing: data as KekRingDocument }),
    discard: discardKeys,
  });
  registerJoinPayload({
    key: 'aesgcm-encryption-config',
    export: async () => {
      const file = encryptionPaths(l).configFile;
      return existsSync(file) && readFileSync(file, 'utf8').includes('aesgcm') ? readFileSync(file, 'utf8') : undefined;
    },
    import: async (data) => {
      if (typeof data === 'string') writeFileAtomic(encryptionPaths(l).configFile, data, 0o600);
    },
    discard: discardKeys,
  });
  // A node that left holds no encryption keys of the cluster.
  registerLeaveHook('encryption-keys', discardKeys);
}
