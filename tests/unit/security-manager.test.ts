// SecurityManager: cluster config → files and flags; KMS plugin lifecycle; rotation; status.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { V1Secret, V1SecretList } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/host/files.js';
import { Layout } from '../../src/layout.js';
import { kmsPaths } from '../../src/security/kek-ring.js';
import { createKmsClient } from '../../src/security/kms.js';
import { SecurityManager, readAesgcmKeys, type ClusterSecurityConfig } from '../../src/security/manager.js';
import type { SecretsApi } from '../../src/security/reencrypt.js';
import { securityTestCrypto } from './security-crypto-double.js';

const crypto = securityTestCrypto();
const defaults: ClusterSecurityConfig = {
  auditLevel: 'Policy',
  podSecurity: { enforce: 'baseline', audit: 'restricted', warn: 'restricted', exemptNamespaces: ['kube-system'] },
  secretsEncryption: 'kms',
};

function oneSecretApi(): SecretsApi & { replaced: number } {
  const secret: V1Secret = { metadata: { name: 'a', namespace: 'default', uid: 'u', resourceVersion: '1' }, data: { k: 'dg==' } };
  return {
    replaced: 0,
    async listSecretForAllNamespaces(): Promise<V1SecretList> { return { items: [structuredClone(secret)], metadata: {} }; },
    async readNamespacedSecret(): Promise<V1Secret> { return structuredClone(secret); },
    async replaceNamespacedSecret(): Promise<V1Secret> { this.replaced++; return structuredClone(secret); },
  };
}

describe('SecurityManager', () => {
  let root: string;
  let layout: Layout;
  let manager: SecurityManager;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'k8s-sec-'));
    layout = new Layout({ K8S_ROOT: root });
    manager = new SecurityManager({ layout, crypto });
  });
  afterEach(async () => {
    await manager.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('turns the default cluster config into three 0600 files and the matching flags', async () => {
    const files = await manager.files(defaults);
    expect(files.map((f) => path.basename(f.path))).toEqual(['audit-policy.yaml', 'admission-control.yaml', 'enc.yaml']);
    expect(files.every((f) => f.mode === 0o600)).toBe(true);
    const args = manager.apiserverArgs(defaults);
    expect(args).toMatchObject({
      'audit-policy-file': files[0]!.path,
      'admission-control-config-file': files[1]!.path,
      'encryption-provider-config': files[2]!.path,
      'enable-admission-plugins': 'NodeRestriction,EventRateLimit,DenyServiceExternalIPs',
      'audit-log-maxage': '30',
    });
    expect(Object.keys(args).every((k) => !k.startsWith('-'))).toBe(true);
  });

  it('maps "none" encryption and "None" audit from the cluster config', async () => {
    const config: ClusterSecurityConfig = { ...defaults, auditLevel: 'None', secretsEncryption: 'none' };
    expect(manager.apiserverArgs(config)).not.toHaveProperty('encryption-provider-config');
    expect(manager.apiserverArgs(config)).toHaveProperty('audit-log-path');
    const files = await manager.files(config);
    expect(files.map((f) => path.basename(f.path))).toEqual(['audit-policy.yaml', 'admission-control.yaml']);
    await manager.beforeApiserver(config);
    expect(manager.status(config).stage).toBe('disabled');
  });

  it('rejects a pod-security level stored with a typo, naming the setting', async () => {
    await expect(manager.files({ ...defaults, podSecurity: { ...defaults.podSecurity, enforce: 'basline' } })).rejects.toThrow(/admission.podSecurity.enforce/);
  });

  it('starts the KMS plugin before the apiserver, rotates, and re-encrypts once the apiserver adopted the new KEK', async () => {
    await manager.beforeApiserver(defaults);
    const client = createKmsClient(kmsPaths(layout).socket);
    try {
      const first = await client.status();
      expect(first.healthz).toBe('ok');
      // A one-node control plane: the plan is made from this node's keys alone.
      const plan = await manager.planClusterRotation(defaults, [{ node: 'only', keys: manager.exportKeys(defaults) }]);
      const keyId = plan.newKeyId;
      await manager.stageKey(defaults, plan.staged, keyId);
      expect((await client.status()).keyId).toBe(first.keyId);
      expect(manager.status(defaults).stage).toBe('rotation-staged');
      await manager.activateKey(defaults, plan.active, keyId);
      expect((await client.status()).keyId).toBe(keyId);
      expect(manager.status(defaults).stage).toBe('rotated-pending-reencrypt');

      const api = oneSecretApi();
      const running = manager.reencrypt(defaults, api, { adoptionTimeoutMs: 5_000 });
      // What kube-apiserver does after seeing the new key_id in Status: wrap a fresh DEK.
      await client.encrypt(await crypto.randomBytes(32));
      const report = await running;
      expect(report.rewritten).toBe(1);
      expect(api.replaced).toBe(1);
      const status = manager.status(defaults);
      expect(status.stage).toBe('reencrypt-finished');
      expect(status.kms!.apiserverKeyId).toBe(keyId);
      expect(status.reencrypt).toMatchObject({ state: 'finished', targetKeyId: keyId, rewritten: 1, failed: 0 });
    } finally {
      client.close();
    }
  });

  it('makes a joining control plane use the cluster ring instead of a new one', async () => {
    await manager.beforeApiserver(defaults);
    const ring = manager.exportKekRing();
    await manager.stop();

    const joinRoot = await mkdtemp(path.join(tmpdir(), 'k8s-sec-join-'));
    const joiner = new SecurityManager({ layout: new Layout({ K8S_ROOT: joinRoot }), crypto });
    try {
      await expect(joiner.beforeApiserver(defaults, { allowNewRing: false })).rejects.toThrow(/copy the ring/);
      await joiner.beforeApiserver(defaults, { kekRing: ring });
      expect(joiner.status(defaults).writeKeyId).toBe(ring.current);
      expect((await stat(kmsPaths(new Layout({ K8S_ROOT: joinRoot })).ringFile)).mode & 0o777).toBe(0o600);
    } finally {
      await joiner.stop();
      await rm(joinRoot, { recursive: true, force: true });
    }
  });

  it('aesgcm: creates a first key, keeps it in enc.yaml, rotates to a new first key', async () => {
    const config: ClusterSecurityConfig = { ...defaults, secretsEncryption: 'aesgcm' };
    const files = await manager.files(config);
    const enc = files.find((f) => f.path.endsWith('enc.yaml'))!;
    writeFileAtomic(enc.path, enc.content, enc.mode);
    expect(readAesgcmKeys(enc.path).map((k) => k.name)).toEqual(['key-1']);
    // Later calls reuse the key on disk rather than inventing another.
    expect((await manager.files(config)).find((f) => f.path === enc.path)!.content).toBe(enc.content);

    const plan = await manager.planClusterRotation(config, [{ node: 'only', keys: manager.exportKeys(config) }]);
    expect(plan.newKeyId).toBe('key-2');
    const providerKeys = (content: string): string[] =>
      (yaml.load(content) as { resources: Array<{ providers: Array<{ aesgcm?: { keys: Array<{ name: string }> } }> }> }).resources[0]!.providers[0]!.aesgcm!.keys.map((k) => k.name);
    // Staged: the new key decrypts (second), the old one still encrypts (first).
    const staged = await manager.stageKey(config, plan.staged, plan.newKeyId);
    expect(providerKeys(staged.files[0]!.content)).toEqual(['key-1', 'key-2']);
    writeFileAtomic(staged.files[0]!.path, staged.files[0]!.content, staged.files[0]!.mode);
    expect(manager.status(config)).toMatchObject({ writeKeyId: 'key-1', stage: 'rotation-staged' });
    const rotated = await manager.activateKey(config, plan.active, plan.newKeyId);
    expect(rotated.files[0]!.mode).toBe(0o600);
    writeFileAtomic(rotated.files[0]!.path, rotated.files[0]!.content, rotated.files[0]!.mode);
    expect(providerKeys(rotated.files[0]!.content)).toEqual(['key-2', 'key-1']);
    expect(manager.status(config)).toMatchObject({ provider: 'aesgcm', writeKeyId: 'key-2', stage: 'rotated-pending-reencrypt' });
    expect(JSON.stringify(manager.status(config))).not.toContain(readAesgcmKeys(enc.path)[0]!.secret);
  });
});
