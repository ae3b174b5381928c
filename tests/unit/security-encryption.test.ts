// EncryptionConfiguration generation, the aesgcm fallback and its rotation, flags and status.
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import {
  aesgcmEncryptionConfigYaml,
  dropAesgcmKey,
  encryptionArgs,
  encryptionConfigFor,
  encryptionConfigYaml,
  files,
  generateAesgcmKey,
  needsKmsPlugin,
  rotateAesgcmKeys,
  secretsEncryptionStatus,
  type AesgcmKey,
} from '../../src/security/encryption.js';
import { SecuritySettingsError } from '../../src/security/errors.js';
import type { KekInfo } from '../../src/security/kek-ring.js';
import { securityTestCrypto } from './security-crypto-double.js';

const crypto = securityTestCrypto();
const layout = new Layout({ K8S_ROOT: '/tmp/k8s-enc-test' });
const socket = layout.common('run', 'kms', 'kms.sock');

interface Provider {
  kms?: { apiVersion: string; name: string; endpoint: string; timeout: string; cachesize?: number };
  aesgcm?: { keys: AesgcmKey[] };
  identity?: Record<string, never>;
}
interface Parsed {
  apiVersion: string;
  kind: string;
  resources: Array<{ resources: string[]; providers: Provider[] }>;
}
const parse = (text: string): Parsed => yaml.load(text) as Parsed;
const providerNames = (doc: Parsed): string[] => doc.resources[0]!.providers.map((p) => Object.keys(p)[0]!);

/** kube-bench cis-1.12 1.2.28: first word on the line after the last "providers:" must be aescbc, kms or secretbox. */
function kubeBench1228(text: string): string {
  const lines = text.split('\n');
  const last = lines.map((l, i) => (l.includes('providers:') ? i : -1)).filter((i) => i >= 0).pop()!;
  return (lines[last + 1]!.match(/[A-Za-z]+/) ?? [''])[0]!;
}

async function keys(n: number): Promise<AesgcmKey[]> {
  let list: AesgcmKey[] = [];
  for (let i = 0; i < n; i++) list = rotateAesgcmKeys(list, await generateAesgcmKey(crypto, list));
  return list;
}

describe('KMS v2 EncryptionConfiguration', () => {
  it('encrypts secrets through k8sd-kms, then falls back to identity for old plaintext', () => {
    const doc = parse(encryptionConfigYaml(socket));
    expect(doc.apiVersion).toBe('apiserver.config.k8s.io/v1');
    expect(doc.kind).toBe('EncryptionConfiguration');
    expect(doc.resources).toHaveLength(1);
    expect(doc.resources[0]!.resources).toEqual(['secrets']);
    expect(providerNames(doc)).toEqual(['kms', 'identity']);
    expect(doc.resources[0]!.providers[0]!.kms).toEqual({ apiVersion: 'v2', name: 'k8sd-kms', endpoint: `unix://${socket}`, timeout: '3s' });
    expect(doc.resources[0]!.providers[0]!.kms).not.toHaveProperty('cachesize');
    expect(doc.resources[0]!.providers[1]!.identity).toEqual({});
  });

  it('passes the kube-bench 1.2.28 provider check', () => {
    expect(kubeBench1228(encryptionConfigYaml(socket))).toBe('kms');
  });

  it('can also encrypt configmaps and keep reading aesgcm data during a migration', async () => {
    const old = await keys(1);
    const doc = parse(encryptionConfigYaml(socket, { resources: ['secrets', 'configmaps'], timeoutSeconds: 5, readAesgcmKeys: old }));
    expect(doc.resources[0]!.resources).toEqual(['secrets', 'configmaps']);
    expect(providerNames(doc)).toEqual(['kms', 'aesgcm', 'identity']);
    expect(doc.resources[0]!.providers[0]!.kms!.timeout).toBe('5s');
  });

  it('rejects relative sockets, bad timeouts and bad resource names by setting name', () => {
    expect(() => encryptionConfigYaml('kms.sock')).toThrow(SecuritySettingsError);
    expect(() => encryptionConfigYaml(socket, { timeoutSeconds: 0 })).toThrow(/encryption.kmsTimeoutSeconds/);
    expect(() => encryptionConfigYaml(socket, { resources: ['Secrets!'] })).toThrow(/encryption.resources\[0\]/);
    expect(() => encryptionConfigYaml(socket, { resources: [] })).toThrow(/encryption.resources/);
    expect(() => encryptionConfigYaml(socket, { resources: ['*.apps', '*.*', '*.', 'pandas.awesome.bears.example'] })).not.toThrow();
  });
});

describe('aesgcm fallback', () => {
  it('writes with the first key and keeps the others for reading, then identity', async () => {
    const list = await keys(2);
    const doc = parse(aesgcmEncryptionConfigYaml(list));
    expect(providerNames(doc)).toEqual(['aesgcm', 'identity']);
    expect(doc.resources[0]!.providers[0]!.aesgcm!.keys.map((k) => k.name)).toEqual(['key-2', 'key-1']);
    for (const key of doc.resources[0]!.providers[0]!.aesgcm!.keys) expect(Buffer.from(key.secret, 'base64')).toHaveLength(32);
  });

  it('rotates: new key first, old keys kept, drop only read-only keys', async () => {
    const [k1] = await keys(1);
    const k2 = await generateAesgcmKey(crypto, [k1!]);
    expect(k2.name).toBe('key-2');
    expect(k2.secret).not.toBe(k1!.secret);
    const rotated = rotateAesgcmKeys([k1!], k2);
    expect(rotated.map((k) => k.name)).toEqual(['key-2', 'key-1']);
    expect(() => dropAesgcmKey(rotated, 'key-2')).toThrow(/write key/);
    expect(dropAesgcmKey(rotated, 'key-1').map((k) => k.name)).toEqual(['key-2']);
    expect(() => rotateAesgcmKeys(rotated, { ...k2 })).toThrow(/used twice/);
  });

  it('refuses keys that are not 32 bytes of base64, without echoing them', () => {
    const short = Buffer.alloc(16, 1).toString('base64');
    try {
      aesgcmEncryptionConfigYaml([{ name: 'key-1', secret: short }]);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(SecuritySettingsError);
      expect((error as SecuritySettingsError).key).toBe('encryption.aesgcmKeys[0].secret');
      expect(String(error)).not.toContain(short);
    }
    expect(() => aesgcmEncryptionConfigYaml([])).toThrow(/at least one key/);
  });

  it('keeps reading KMS data after moving from kms to aesgcm', async () => {
    const doc = parse(aesgcmEncryptionConfigYaml(await keys(1), { readKmsSocket: socket }));
    expect(providerNames(doc)).toEqual(['aesgcm', 'kms', 'identity']);
  });
});

describe('encryption settings → files and flags', () => {
  it('defaults to KMS, written 0600 under etc/encryption, with the config and reload flags', () => {
    const out = files(layout);
    expect(out).toHaveLength(1);
    expect(out[0]!.path).toBe(layout.common('etc', 'encryption', 'enc.yaml'));
    expect(out[0]!.mode).toBe(0o600);
    expect(providerNames(parse(out[0]!.content))).toEqual(['kms', 'identity']);
    expect(encryptionArgs(layout)).toEqual({
      'encryption-provider-config': layout.common('etc', 'encryption', 'enc.yaml'),
      'encryption-provider-config-automatic-reload': 'true',
    });
    expect(needsKmsPlugin({})).toBe(true);
  });

  it('"off" writes nothing and sets no flag; "identity" keeps reading while writing plaintext', async () => {
    expect(files(layout, { provider: 'off' })).toEqual([]);
    expect(encryptionArgs(layout, { provider: 'off' })).toEqual({});
    expect(needsKmsPlugin({ provider: 'off' })).toBe(false);
    const text = encryptionConfigFor(layout, { provider: 'identity', keepReading: ['kms', 'aesgcm'], aesgcmKeys: await keys(1) })!;
    expect(providerNames(parse(text))).toEqual(['identity', 'kms', 'aesgcm']);
    expect(needsKmsPlugin({ provider: 'identity', keepReading: ['kms'] })).toBe(true);
    expect(() => encryptionConfigFor(layout, { provider: 'off', keepReading: ['kms'] })).toThrow(/encryption.provider/);
  });

  it('names the bad setting', () => {
    expect(() => files(layout, { provider: 'rot13' as never })).toThrow(/encryption.provider/);
    expect(() => files(layout, { provider: 'aesgcm' })).toThrow(/encryption.aesgcmKeys/);
  });
});

describe('secretsEncryptionStatus', () => {
  const kek = (generation: number, current: boolean, staged = false): KekInfo => ({ id: `kek-${generation}-0123456789abcdef`, generation, createdAt: '2026-01-01T00:00:00.000Z', current, staged });

  it('reports the KMS write key, the key the apiserver last used and the stage', () => {
    const status = secretsEncryptionStatus({ layout, settings: {}, keks: [kek(1, true)], lastEncrypt: { keyId: kek(1, true).id, at: new Date('2026-01-02T00:00:00Z') } });
    expect(status).toMatchObject({ enabled: true, provider: 'kms', writeKeyId: kek(1, true).id, stage: 'enabled', resources: ['secrets'] });
    expect(status.kms).toMatchObject({ providerName: 'k8sd-kms', endpoint: `unix://${socket}`, apiserverKeyId: kek(1, true).id, lastEncryptAt: '2026-01-02T00:00:00.000Z' });
  });

  it('moves through rotated → re-encrypting → finished', () => {
    const keks = [kek(1, false), kek(2, true)];
    expect(secretsEncryptionStatus({ layout, settings: {}, keks }).stage).toBe('rotated-pending-reencrypt');
    const running = { state: 'running' as const, targetKeyId: kek(2, true).id, startedAt: 'x', rewritten: 3, failed: 0 };
    expect(secretsEncryptionStatus({ layout, settings: {}, keks, reencrypt: running }).stage).toBe('reencrypt-active');
    expect(secretsEncryptionStatus({ layout, settings: {}, keks, reencrypt: { ...running, state: 'finished' } }).stage).toBe('reencrypt-finished');
    expect(secretsEncryptionStatus({ layout, settings: {}, keks, reencrypt: { ...running, state: 'failed' } }).stage).toBe('reencrypt-failed');
    // A rotation after the last run makes it pending again.
    const keks3 = [...keks.map((k) => ({ ...k, current: false })), kek(3, true)];
    expect(secretsEncryptionStatus({ layout, settings: {}, keks: keks3, reencrypt: { ...running, state: 'finished' } }).stage).toBe('rotated-pending-reencrypt');
    // A key staged by a cluster rotation (on its way to every node) shows as such.
    expect(secretsEncryptionStatus({ layout, settings: {}, keks: [...keks, kek(3, false, true)], reencrypt: { ...running, state: 'finished' } }).stage).toBe('rotation-staged');
  });

  it('never includes aesgcm key material', async () => {
    const list = await keys(2);
    const status = secretsEncryptionStatus({ layout, settings: { provider: 'aesgcm', aesgcmKeys: list } });
    expect(status.writeKeyId).toBe('key-2');
    expect(status.aesgcm!.keys).toEqual([{ name: 'key-2', writes: true, staged: false }, { name: 'key-1', writes: false, staged: false }]);
    const text = JSON.stringify(status);
    for (const key of list) expect(text).not.toContain(key.secret);
  });

  it('reports disabled when off', () => {
    expect(secretsEncryptionStatus({ layout, settings: { provider: 'off' } })).toMatchObject({ enabled: false, stage: 'disabled', configFile: null, writeKeyId: null });
  });
});
