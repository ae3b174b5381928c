// Encryption at rest: the EncryptionConfiguration kube-apiserver reads, its flags,
// the aesgcm fallback with key rotation, and the status k8sd reports.
//
// Default: KMS v2 through the k8sd plugin (see ./kms.ts, ./kek-ring.ts), then identity
// so objects written before encryption was enabled stay readable until re-encrypted.
import path from 'node:path';
import type { CryptoBackend } from '../crypto/types.js';
import type { Layout } from '../layout.js';
import type { Args } from '../services/args.js';
import { SecuritySettingsError } from './errors.js';
import { SECRET_FILE_MODE, toYaml, type SecurityFile } from './files.js';
import { kmsPaths, type KekInfo } from './kek-ring.js';
import type { KeySet, VersionedKey } from './key-sets.js';

// Kept here rather than imported from ./kms.js so this module does not load gRPC.
const KMS_PROVIDER_NAME = 'k8sd-kms';
const KMS_ENDPOINT_SCHEME = 'unix://';

/**
 * kms: KMS v2 via the k8sd plugin (default).
 * aesgcm: static keys in the config file (no plugin; for hosts where k8sd cannot serve the socket).
 * identity: write plaintext but keep reading what was encrypted (the way to turn encryption off).
 * off: no EncryptionConfiguration at all (only valid if nothing was ever encrypted).
 */
export type EncryptionProvider = 'kms' | 'aesgcm' | 'identity' | 'off';
export type ReadOnlyProvider = 'kms' | 'aesgcm';

/** An aesgcm key. `secret` is base64 of 32 random bytes: never log it. */
export interface AesgcmKey {
  name: string;
  secret: string;
}

export interface EncryptionSettings {
  provider: EncryptionProvider;
  /** Resources to encrypt, as in EncryptionConfiguration (e.g. "secrets", "configmaps", "*.apps"). */
  resources: string[];
  /** Timeout of each apiserver → plugin call. */
  kmsTimeoutSeconds: number;
  /** aesgcm keys, newest first; the first one encrypts. Needed when aesgcm is written or read. */
  aesgcmKeys: AesgcmKey[];
  /** Other providers to keep for reading while moving between providers (re-encrypt, then drop). */
  keepReading: ReadOnlyProvider[];
  /** --encryption-provider-config-automatic-reload: pick up config changes without a restart. */
  automaticReload: boolean;
}

export const DEFAULT_ENCRYPTION_SETTINGS: Readonly<EncryptionSettings> = Object.freeze({
  provider: 'kms',
  resources: ['secrets'],
  kmsTimeoutSeconds: 3,
  aesgcmKeys: [],
  keepReading: [],
  automaticReload: true,
});

export interface EncryptionPaths {
  /** The EncryptionConfiguration file (0600). Same place as the Canonical hardening guide. */
  configFile: string;
  kms: ReturnType<typeof kmsPaths>;
}

export function encryptionPaths(layout: Layout): EncryptionPaths {
  return { configFile: layout.common('etc', 'encryption', 'enc.yaml'), kms: kmsPaths(layout) };
}

type ProviderEntry =
  | { kms: { apiVersion: 'v2'; name: string; endpoint: string; timeout: string } }
  | { aesgcm: { keys: AesgcmKey[] } }
  | { identity: Record<string, never> };

interface EncryptionConfigurationDocument {
  apiVersion: 'apiserver.config.k8s.io/v1';
  kind: 'EncryptionConfiguration';
  resources: Array<{ resources: string[]; providers: ProviderEntry[] }>;
}

const AESGCM_KEY_BYTES = 32;
const KEY_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// "secrets", "deployments.apps", "*.apps", "*." (core group) or "*.*".
const RESOURCE_PATTERN = /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)?|\*\.(?:\*|[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)?)$/;

function kmsProvider(socketPath: string, timeoutSeconds: number): ProviderEntry {
  if (!path.isAbsolute(socketPath)) throw new SecuritySettingsError('encryption.kmsSocket', `"${socketPath}" must be an absolute path`);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new SecuritySettingsError('encryption.kmsTimeoutSeconds', `must be a positive whole number of seconds, got ${timeoutSeconds}`);
  }
  return { kms: { apiVersion: 'v2', name: KMS_PROVIDER_NAME, endpoint: `${KMS_ENDPOINT_SCHEME}${socketPath}`, timeout: `${timeoutSeconds}s` } };
}

function validateAesgcmKeys(keys: readonly AesgcmKey[]): void {
  if (keys.length === 0) throw new SecuritySettingsError('encryption.aesgcmKeys', 'needs at least one key; generate one with generateAesgcmKey()');
  const names = new Set<string>();
  keys.forEach((key, index) => {
    const where = `encryption.aesgcmKeys[${index}]`;
    if (!KEY_NAME_PATTERN.test(key.name)) throw new SecuritySettingsError(`${where}.name`, `"${key.name}" must be lower-case letters, digits and '-'`);
    if (names.has(key.name)) throw new SecuritySettingsError(`${where}.name`, `"${key.name}" is used twice; key names must be unique`);
    names.add(key.name);
    const raw = Buffer.from(key.secret, 'base64');
    // Only 32-byte keys: AES-256. The apiserver would accept 16/24 too; we do not write them.
    if (raw.length !== AESGCM_KEY_BYTES || raw.toString('base64') !== key.secret) {
      throw new SecuritySettingsError(`${where}.secret`, `must be base64 of ${AESGCM_KEY_BYTES} bytes (value not shown)`);
    }
  });
}

function validateResources(resources: readonly string[]): void {
  if (resources.length === 0) throw new SecuritySettingsError('encryption.resources', 'needs at least one resource, e.g. "secrets"');
  resources.forEach((resource, index) => {
    if (!RESOURCE_PATTERN.test(resource)) {
      throw new SecuritySettingsError(`encryption.resources[${index}]`, `"${resource}" is not a resource name like "secrets", "deployments.apps", "*.apps" or "*.*"`);
    }
  });
  if (new Set(resources).size !== resources.length) throw new SecuritySettingsError('encryption.resources', 'lists a resource twice');
}

function document(resources: readonly string[], providers: ProviderEntry[]): string {
  validateResources(resources);
  const doc: EncryptionConfigurationDocument = {
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'EncryptionConfiguration',
    // One resources entry only: kube-bench 1.2.28 reads the first provider after the last "providers:".
    resources: [{ resources: [...resources], providers }],
  };
  return toYaml(doc);
}

/**
 * EncryptionConfiguration that writes through the k8sd KMS v2 plugin and still reads
 * identity (plaintext) data. `readAesgcmKeys` keeps aesgcm-encrypted data readable
 * after moving from the aesgcm fallback to KMS.
 */
export function encryptionConfigYaml(
  socketPath: string,
  options: { resources?: readonly string[]; timeoutSeconds?: number; readAesgcmKeys?: readonly AesgcmKey[] } = {},
): string {
  const providers: ProviderEntry[] = [kmsProvider(socketPath, options.timeoutSeconds ?? DEFAULT_ENCRYPTION_SETTINGS.kmsTimeoutSeconds)];
  if (options.readAesgcmKeys && options.readAesgcmKeys.length > 0) {
    validateAesgcmKeys(options.readAesgcmKeys);
    providers.push({ aesgcm: { keys: [...options.readAesgcmKeys] } });
  }
  providers.push({ identity: {} });
  return document(options.resources ?? DEFAULT_ENCRYPTION_SETTINGS.resources, providers);
}

/**
 * The aesgcm fallback: keys newest first (the first encrypts, the rest only decrypt),
 * then identity. `readKmsSocket` keeps KMS-encrypted data readable after moving from KMS.
 * aesgcm uses random nonces: rotate the key well before 2^32 writes with one key
 * (upstream advice is to rotate every 200,000 writes).
 */
export function aesgcmEncryptionConfigYaml(
  keys: readonly AesgcmKey[],
  options: { resources?: readonly string[]; readKmsSocket?: string; timeoutSeconds?: number } = {},
): string {
  validateAesgcmKeys(keys);
  const providers: ProviderEntry[] = [{ aesgcm: { keys: [...keys] } }];
  if (options.readKmsSocket) providers.push(kmsProvider(options.readKmsSocket, options.timeoutSeconds ?? DEFAULT_ENCRYPTION_SETTINGS.kmsTimeoutSeconds));
  providers.push({ identity: {} });
  return document(options.resources ?? DEFAULT_ENCRYPTION_SETTINGS.resources, providers);
}

/** A new aesgcm key named key-<n+1>, n the highest key number in `existing`, or key-<generation>. */
export async function generateAesgcmKey(crypto: CryptoBackend, existing: readonly AesgcmKey[] = [], generation?: number): Promise<AesgcmKey> {
  const highest = existing.reduce((max, key) => {
    const match = /^key-([0-9]+)$/.exec(key.name);
    return match ? Math.max(max, Number(match[1])) : max;
  }, 0);
  const secret = await crypto.randomBytes(AESGCM_KEY_BYTES);
  if (secret.length !== AESGCM_KEY_BYTES) throw new SecuritySettingsError('encryption.aesgcmKeys', `crypto backend returned ${secret.length} random bytes, wanted ${AESGCM_KEY_BYTES}`);
  return { name: `key-${generation ?? highest + 1}`, secret: secret.toString('base64') };
}

/** Rotation step 1: the new key goes first (writes), old keys stay (reads). Re-encrypt, then drop old keys. */
export function rotateAesgcmKeys(keys: readonly AesgcmKey[], newKey: AesgcmKey): AesgcmKey[] {
  const rotated = [newKey, ...keys];
  validateAesgcmKeys(rotated);
  return rotated;
}

const GENERATED_KEY_NAME = /^key-([1-9][0-9]*)$/;

/**
 * aesgcm keys as a key set for the cluster-wide rotation rules (./key-sets.ts): the first
 * key is current, the generation comes from the name. Keys not named key-<n> (hand edits)
 * are refused: their age is unknown, so a newer-than-current key could not be told apart
 * from an old one that still decrypts data.
 */
export function aesgcmKeySet(keys: readonly AesgcmKey[]): KeySet<VersionedKey> {
  validateAesgcmKeys(keys);
  return {
    current: keys[0]!.name,
    keys: keys.map((key, index) => {
      const match = GENERATED_KEY_NAME.exec(key.name);
      if (!match) {
        throw new SecuritySettingsError(`encryption.aesgcmKeys[${index}].name`, `"${key.name}" was not made by k8sd; rename it key-<n> on every control-plane node (n above every other key) before rotating`);
      }
      return { id: key.name, generation: Number(match[1]), secret: key.secret };
    }),
  };
}

/** The EncryptionConfiguration order of a key set: the current key first (it encrypts), then newest first. */
export function aesgcmKeysOf(set: KeySet<VersionedKey>): AesgcmKey[] {
  const current = set.keys.find((k) => k.id === set.current);
  if (!current) throw new SecuritySettingsError('encryption.aesgcmKeys', `the write key "${set.current}" is not among the keys`);
  const others = set.keys.filter((k) => k.id !== set.current).sort((a, b) => b.generation - a.generation);
  return [current, ...others].map((k) => ({ name: k.id, secret: k.secret }));
}

/** Rotation step 3, after re-encryption: drop a read-only key. The write key cannot be dropped. */
export function dropAesgcmKey(keys: readonly AesgcmKey[], name: string): AesgcmKey[] {
  if (keys[0]?.name === name) throw new SecuritySettingsError('encryption.aesgcmKeys', `"${name}" is the write key; rotate first`);
  if (!keys.some((k) => k.name === name)) throw new SecuritySettingsError('encryption.aesgcmKeys', `no key named "${name}"`);
  return keys.filter((k) => k.name !== name);
}

/** Settings with defaults filled in and checked. */
export function resolveEncryptionSettings(settings: Partial<EncryptionSettings> = {}): EncryptionSettings {
  const resolved: EncryptionSettings = {
    ...DEFAULT_ENCRYPTION_SETTINGS,
    ...settings,
    resources: [...(settings.resources ?? DEFAULT_ENCRYPTION_SETTINGS.resources)],
    aesgcmKeys: [...(settings.aesgcmKeys ?? [])],
    keepReading: [...(settings.keepReading ?? [])],
  };
  const providers: readonly EncryptionProvider[] = ['kms', 'aesgcm', 'identity', 'off'];
  if (!providers.includes(resolved.provider)) {
    throw new SecuritySettingsError('encryption.provider', `"${String(resolved.provider)}" is not one of ${providers.join(', ')}`);
  }
  for (const [index, reader] of resolved.keepReading.entries()) {
    if (reader !== 'kms' && reader !== 'aesgcm') throw new SecuritySettingsError(`encryption.keepReading[${index}]`, `"${String(reader)}" must be kms or aesgcm`);
  }
  if (resolved.provider === 'off' && resolved.keepReading.length > 0) {
    throw new SecuritySettingsError('encryption.provider', '"off" drops the config, so encrypted data could not be read; use "identity" with keepReading, re-encrypt, then "off"');
  }
  return resolved;
}

/** The EncryptionConfiguration text for these settings, or undefined when off. */
export function encryptionConfigFor(layout: Layout, input: Partial<EncryptionSettings>): string | undefined {
  const settings = resolveEncryptionSettings(input);
  const socket = kmsPaths(layout).socket;
  const reads = new Set(settings.keepReading);
  switch (settings.provider) {
    case 'off':
      return undefined;
    case 'kms':
      return encryptionConfigYaml(socket, {
        resources: settings.resources,
        timeoutSeconds: settings.kmsTimeoutSeconds,
        readAesgcmKeys: reads.has('aesgcm') ? settings.aesgcmKeys : [],
      });
    case 'aesgcm':
      return aesgcmEncryptionConfigYaml(settings.aesgcmKeys, {
        resources: settings.resources,
        timeoutSeconds: settings.kmsTimeoutSeconds,
        ...(reads.has('kms') ? { readKmsSocket: socket } : {}),
      });
    case 'identity': {
      const providers: ProviderEntry[] = [{ identity: {} }];
      if (reads.has('kms')) providers.push(kmsProvider(socket, settings.kmsTimeoutSeconds));
      if (reads.has('aesgcm')) {
        validateAesgcmKeys(settings.aesgcmKeys);
        providers.push({ aesgcm: { keys: [...settings.aesgcmKeys] } });
      }
      return document(settings.resources, providers);
    }
  }
}

/** True when k8sd must serve the KMS plugin before starting kube-apiserver. */
export function needsKmsPlugin(input: Partial<EncryptionSettings>): boolean {
  const settings = resolveEncryptionSettings(input);
  return settings.provider === 'kms' || (settings.provider !== 'off' && settings.keepReading.includes('kms'));
}

/** Files to write (atomically, 0600). The KEK ring is not here: KekStore owns it. */
export function files(layout: Layout, settings: Partial<EncryptionSettings> = {}): SecurityFile[] {
  const content = encryptionConfigFor(layout, settings);
  return content === undefined ? [] : [{ path: encryptionPaths(layout).configFile, content, mode: SECRET_FILE_MODE }];
}

/** kube-apiserver flags (CIS 1.2.27). Empty when encryption is off. */
export function encryptionArgs(layout: Layout, settings: Partial<EncryptionSettings> = {}): Args {
  const resolved = resolveEncryptionSettings(settings);
  if (resolved.provider === 'off') return {};
  return {
    'encryption-provider-config': encryptionPaths(layout).configFile,
    'encryption-provider-config-automatic-reload': String(resolved.automaticReload),
  };
}

export type ReencryptState = 'running' | 'finished' | 'failed';

/** What k8sd remembers about the last re-encryption run. */
export interface ReencryptRecord {
  state: ReencryptState;
  /** The write key (KEK id or aesgcm key name) that was current when the run started. */
  targetKeyId: string;
  startedAt: string;
  finishedAt?: string;
  rewritten: number;
  failed: number;
}

export type EncryptionStage =
  | 'disabled'
  | 'enabled'
  | 'rotation-staged'
  | 'rotated-pending-reencrypt'
  | 'reencrypt-active'
  | 'reencrypt-finished'
  | 'reencrypt-failed';

export interface SecretsEncryptionStatus {
  enabled: boolean;
  provider: EncryptionProvider;
  resources: string[];
  configFile: string | null;
  /** Key that new writes use: KEK id (kms) or key name (aesgcm); null otherwise. */
  writeKeyId: string | null;
  keepReading: ReadOnlyProvider[];
  stage: EncryptionStage;
  kms?: {
    providerName: string;
    endpoint: string;
    keks: KekInfo[];
    /** The KEK the apiserver last wrapped a DEK with; differs from writeKeyId until it polls Status. */
    apiserverKeyId: string | null;
    lastEncryptAt: string | null;
  };
  /** `staged`: newer than the write key, on its way to every control-plane node (decrypts, does not encrypt yet). */
  aesgcm?: { keys: Array<{ name: string; writes: boolean; staged: boolean }> };
  reencrypt?: ReencryptRecord;
}

export interface SecretsEncryptionStatusInput {
  layout: Layout;
  settings: Partial<EncryptionSettings>;
  /** From KekStore.list() when the KMS plugin runs on this node. */
  keks?: KekInfo[];
  /** From KmsServer.lastEncrypt(). */
  lastEncrypt?: { keyId: string; at: Date };
  reencrypt?: ReencryptRecord;
}

/** Status data for `k8s secrets-encryption status` (never contains key material). */
export function secretsEncryptionStatus(input: SecretsEncryptionStatusInput): SecretsEncryptionStatus {
  const settings = resolveEncryptionSettings(input.settings);
  const paths = encryptionPaths(input.layout);
  const enabled = settings.provider === 'kms' || settings.provider === 'aesgcm';
  let writeKeyId: string | null = null;
  if (settings.provider === 'kms') writeKeyId = input.keks?.find((k) => k.current)?.id ?? null;
  if (settings.provider === 'aesgcm') writeKeyId = settings.aesgcmKeys[0]?.name ?? null;

  const readKeyCount = settings.provider === 'kms' ? (input.keks?.length ?? 0) : settings.provider === 'aesgcm' ? settings.aesgcmKeys.length : 0;
  const pendingReaders = settings.keepReading.length > 0 || readKeyCount > 1;
  const generation = (name: string): number => Number(GENERATED_KEY_NAME.exec(name)?.[1] ?? 0);
  const writeGeneration = generation(settings.aesgcmKeys[0]?.name ?? '');
  const aesgcmStaged = (name: string): boolean => settings.provider === 'aesgcm' && writeGeneration > 0 && generation(name) > writeGeneration;
  const staged = settings.provider === 'kms' ? (input.keks ?? []).some((k) => k.staged) : settings.aesgcmKeys.some((k) => aesgcmStaged(k.name));
  let stage: EncryptionStage;
  const last = input.reencrypt;
  if (settings.provider === 'off') stage = 'disabled';
  else if (staged) stage = 'rotation-staged';
  else if (last?.state === 'running') stage = 'reencrypt-active';
  else if (last && last.targetKeyId === (writeKeyId ?? 'identity')) stage = last.state === 'finished' ? 'reencrypt-finished' : 'reencrypt-failed';
  else if (pendingReaders) stage = 'rotated-pending-reencrypt';
  else stage = 'enabled';

  const status: SecretsEncryptionStatus = {
    enabled,
    provider: settings.provider,
    resources: settings.resources,
    configFile: settings.provider === 'off' ? null : paths.configFile,
    writeKeyId,
    keepReading: settings.keepReading,
    stage,
  };
  if (settings.provider === 'kms' || settings.keepReading.includes('kms')) {
    status.kms = {
      providerName: KMS_PROVIDER_NAME,
      endpoint: `${KMS_ENDPOINT_SCHEME}${paths.kms.socket}`,
      keks: input.keks ?? [],
      apiserverKeyId: input.lastEncrypt?.keyId ?? null,
      lastEncryptAt: input.lastEncrypt?.at.toISOString() ?? null,
    };
  }
  if (settings.provider === 'aesgcm' || settings.keepReading.includes('aesgcm')) {
    status.aesgcm = { keys: settings.aesgcmKeys.map((k, i) => ({ name: k.name, writes: settings.provider === 'aesgcm' && i === 0, staged: aesgcmStaged(k.name) })) };
  }
  if (input.reencrypt) status.reencrypt = { ...input.reencrypt };
  return status;
}
