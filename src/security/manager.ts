// One object for k8sd: turns the cluster's security settings into files and
// kube-apiserver flags, runs the KMS plugin, rotates keys and re-encrypts.
// It matches k8sd's SecurityProvider (files, apiserverArgs, beforeApiserver, stop).
// Key rotation is cluster-wide and two-phase (stage on every control-plane node, then
// activate); this object does one node's part of it and plans it from every node's keys.
// k8sd (src/k8sd/secrets-rotation.ts) moves the keys between nodes.
import { existsSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import type { CryptoBackend } from '../crypto/types.js';
import type { ClusterConfig } from '../datastore/state.js';
import type { Layout } from '../layout.js';
import type { Args } from '../services/args.js';
import { type AdmissionSettingsInput, type PodSecurityLevel, admissionArgs, files as admissionFiles } from './admission.js';
import { type AuditSettings, auditArgs, files as auditFiles } from './audit.js';
import {
  type AesgcmKey,
  type EncryptionSettings,
  type ReencryptRecord,
  type SecretsEncryptionStatus,
  aesgcmKeySet,
  aesgcmKeysOf,
  encryptionArgs,
  encryptionPaths,
  files as encryptionFiles,
  generateAesgcmKey,
  needsKmsPlugin,
  secretsEncryptionStatus,
} from './encryption.js';
import { SecurityError, SecuritySettingsError } from './errors.js';
import type { SecurityFile } from './files.js';
import { KekStore, generateKek, kekRingOf, kmsPaths, parseKekRing, verifyRingFingerprints, type KekInfo, type KekRingDocument } from './kek-ring.js';
import { applyActivate, applyStage, discardStagedKey, planRotation, stagedKeys, type KeySet, type NodeKeys, type VersionedKey } from './key-sets.js';
import { startKmsServer, type KmsServer } from './kms.js';
import type { SecurityLogger } from './logger.js';
import { reencryptSecrets, type ReencryptOptions, type ReencryptReport, type SecretsApi } from './reencrypt.js';

/** The part of the cluster config that src/security reads. */
export type ClusterSecurityConfig = Pick<ClusterConfig, 'auditLevel' | 'podSecurity' | 'secretsEncryption'>;

export interface SecuritySettings {
  audit: Partial<AuditSettings>;
  admission: AdmissionSettingsInput;
  encryption: Partial<EncryptionSettings>;
}

/** Maps the stored cluster config onto the module settings (validation happens in each module). */
export function securitySettingsFrom(config: ClusterSecurityConfig, aesgcmKeys: AesgcmKey[] = []): SecuritySettings {
  return {
    audit: { level: config.auditLevel },
    admission: {
      podSecurity: {
        // Stored as plain strings; resolveAdmissionSettings rejects anything else by setting name.
        enforce: config.podSecurity.enforce as PodSecurityLevel,
        audit: config.podSecurity.audit as PodSecurityLevel,
        warn: config.podSecurity.warn as PodSecurityLevel,
        exemptions: { namespaces: config.podSecurity.exemptNamespaces },
      },
    },
    encryption: { provider: config.secretsEncryption === 'none' ? 'off' : config.secretsEncryption, aesgcmKeys },
  };
}

/** aesgcm keys currently in the EncryptionConfiguration file (it is their only copy). */
export function readAesgcmKeys(configFile: string): AesgcmKey[] {
  if (!existsSync(configFile)) return [];
  let parsed: unknown;
  try {
    parsed = yaml.load(readFileSync(configFile, 'utf8'));
  } catch {
    throw new SecurityError(`${configFile} is not valid YAML; restore it from another control-plane node before changing encryption`);
  }
  const resources = (parsed as { resources?: Array<{ providers?: Array<{ aesgcm?: { keys?: AesgcmKey[] } }> }> } | null)?.resources ?? [];
  for (const entry of resources) {
    for (const provider of entry.providers ?? []) {
      if (provider.aesgcm?.keys) return provider.aesgcm.keys.map((k) => ({ name: String(k.name), secret: String(k.secret) }));
    }
  }
  return [];
}

/**
 * One node's encryption keys, key material included. Travels between control-plane nodes
 * over k8sd's pinned mTLS cluster API only; never logged.
 */
export type EncryptionKeys = { provider: 'kms'; ring: KekRingDocument } | { provider: 'aesgcm'; keys: AesgcmKey[] };

/** What can be shown about one node's keys (no key material). */
export interface EncryptionKeySummary {
  provider: 'kms' | 'aesgcm';
  /** The key new writes use on this node. */
  writeKeyId: string;
  /** Every key this node can decrypt with, oldest first. */
  keyIds: string[];
  /** Keys newer than the write key: a rotation distributed them and has not made them current yet. */
  stagedKeyIds: string[];
}

/** A cluster rotation, planned from every control-plane node's keys. */
export interface ClusterRotationPlan {
  provider: 'kms' | 'aesgcm';
  previousKeyId: string;
  newKeyId: string;
  /** Sent to every node by the stage step (the new key decrypts, does not write). */
  staged: EncryptionKeys;
  /** Sent to every node by the activate step (the new key writes). */
  active: EncryptionKeys;
  /** Staged keys of an earlier, interrupted rotation, dropped by the stage step. */
  abandoned: string[];
  /** Nodes whose keys differed from the cluster's before this rotation. */
  outOfSync: string[];
}

/** What a stage, activate or discard did on this node. aesgcm: `files` (0600) for k8sd to write; the apiserver reloads them. */
export interface KeyChange {
  summary: EncryptionKeySummary;
  files: SecurityFile[];
}

function summaryOf(provider: 'kms' | 'aesgcm', set: KeySet<VersionedKey>): EncryptionKeySummary {
  return {
    provider,
    writeKeyId: set.current,
    keyIds: [...set.keys].sort((a, b) => a.generation - b.generation).map((k) => k.id),
    stagedKeyIds: stagedKeys(set).map((k) => k.id),
  };
}

function rotatingProvider(config: ClusterSecurityConfig): 'kms' | 'aesgcm' {
  if (config.secretsEncryption === 'kms' || config.secretsEncryption === 'aesgcm') return config.secretsEncryption;
  throw new SecuritySettingsError('security.secrets-encryption', 'is "none"; enable kms or aesgcm before rotating keys');
}

export interface SecurityManagerOptions {
  layout: Layout;
  crypto: CryptoBackend;
  logger?: SecurityLogger;
}

export class SecurityManager {
  private store: KekStore | undefined;
  private server: KmsServer | undefined;
  private lastReencrypt: ReencryptRecord | undefined;
  private readonly layout: Layout;
  private readonly crypto: CryptoBackend;
  private readonly logger: SecurityLogger | undefined;

  constructor(options: SecurityManagerOptions) {
    this.layout = options.layout;
    this.crypto = options.crypto;
    this.logger = options.logger;
  }

  /** aesgcm keys: the ones on disk, or a first key when aesgcm is chosen and none exist yet. */
  private async aesgcmKeysFor(config: ClusterSecurityConfig): Promise<AesgcmKey[]> {
    const keys = readAesgcmKeys(encryptionPaths(this.layout).configFile);
    if (config.secretsEncryption === 'aesgcm' && keys.length === 0) return [await generateAesgcmKey(this.crypto)];
    return keys;
  }

  /** Audit policy, admission config and EncryptionConfiguration, all 0600. */
  async files(config: ClusterSecurityConfig): Promise<SecurityFile[]> {
    const settings = securitySettingsFrom(config, await this.aesgcmKeysFor(config));
    return [
      ...auditFiles(this.layout, settings.audit),
      ...admissionFiles(this.layout, settings.admission),
      ...encryptionFiles(this.layout, settings.encryption),
    ];
  }

  /** kube-apiserver flags for audit, admission and encryption at rest (keys without leading dashes). */
  apiserverArgs(config: ClusterSecurityConfig): Args {
    const settings = securitySettingsFrom(config);
    return {
      ...auditArgs(this.layout, settings.audit),
      ...admissionArgs(this.layout, settings.admission),
      ...encryptionArgs(this.layout, settings.encryption),
    };
  }

  /**
   * Starts the KMS plugin when the config uses it. On the first node the KEK ring is
   * created; a joining control-plane node must pass the cluster's ring (from an existing
   * node over k8sd's mTLS API) as `kekRing`, or it would invent a KEK the others lack.
   */
  async beforeApiserver(config: ClusterSecurityConfig, options: { kekRing?: KekRingDocument; allowNewRing?: boolean } = {}): Promise<void> {
    if (!needsKmsPlugin(securitySettingsFrom(config).encryption)) return;
    const paths = kmsPaths(this.layout);
    if (!this.store) {
      this.store = await KekStore.open({
        file: paths.ringFile,
        crypto: this.crypto,
        create: options.allowNewRing ?? options.kekRing === undefined,
        ...(options.kekRing ? { seed: options.kekRing } : {}),
        ...(this.logger ? { logger: this.logger } : {}),
      });
    } else if (options.kekRing) {
      await this.store.adopt(options.kekRing);
    }
    if (!this.server) this.server = await startKmsServer({ socketPath: paths.socket, store: this.store, ...(this.logger ? { logger: this.logger } : {}) });
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
    // The next beforeApiserver re-opens the ring from disk (a node that left and joins again
    // gets a fresh ring from the cluster; its old one was deleted when it left).
    this.store = undefined;
  }

  /** The KEK ring to hand to a joining control-plane node. Contains keys: send over mTLS only. */
  exportKekRing(): KekRingDocument {
    return this.kekStore().exportRing();
  }

  private kekStore(): KekStore {
    if (!this.store) throw new SecurityError('the KMS plugin is not running on this node; start k8sd on a control-plane node that uses KMS');
    return this.store;
  }

  private aesgcmKeys(): AesgcmKey[] {
    const keys = readAesgcmKeys(encryptionPaths(this.layout).configFile);
    if (keys.length === 0) throw new SecurityError(`${encryptionPaths(this.layout).configFile} holds no aesgcm key; copy it from another control-plane node`);
    return keys;
  }

  /** This node's keys, key material included, for the rotating node. Send over mTLS only. */
  exportKeys(config: ClusterSecurityConfig): EncryptionKeys {
    return rotatingProvider(config) === 'kms' ? { provider: 'kms', ring: this.exportKekRing() } : { provider: 'aesgcm', keys: this.aesgcmKeys() };
  }

  /** This node's keys without key material: which one writes, which are staged. */
  keySummary(config: ClusterSecurityConfig): EncryptionKeySummary {
    const keys = this.exportKeys(config);
    return keys.provider === 'kms' ? summaryOf('kms', keys.ring) : summaryOf('aesgcm', aesgcmKeySet(keys.keys));
  }

  /**
   * Plans a rotation from every control-plane node's keys (this node's included): the union
   * of all keys (conflicts refused, naming the nodes) plus a new key newer than any of them.
   * Rings from other nodes are checked like the ring file (structure, fingerprints).
   */
  async planClusterRotation(config: ClusterSecurityConfig, nodes: ReadonlyArray<NodeKeys<EncryptionKeys>>): Promise<ClusterRotationPlan> {
    const provider = rotatingProvider(config);
    for (const { node, keys } of nodes) {
      if (keys.provider !== provider) throw new SecurityError(`node "${node}" encrypts with ${keys.provider}, the cluster config says ${provider}; restart k8sd on "${node}"`);
    }
    if (provider === 'kms') {
      const rings: Array<NodeKeys<KekRingDocument>> = [];
      for (const { node, keys } of nodes) {
        const source = `KEK ring of node "${node}"`;
        const ring = parseKekRing(JSON.stringify((keys as { ring: KekRingDocument }).ring), source);
        await verifyRingFingerprints(this.crypto, ring, source);
        rings.push({ node, keys: ring });
      }
      const plan = await planRotation(rings, (generation) => generateKek(this.crypto, generation));
      return { provider, ...plan, staged: { provider, ring: kekRingOf(plan.staged) }, active: { provider, ring: kekRingOf(plan.active) } };
    }
    const sets = nodes.map(({ node, keys }) => ({ node, keys: aesgcmKeySet((keys as { keys: AesgcmKey[] }).keys) }));
    const plan = await planRotation(sets, async (generation) => {
      const key = await generateAesgcmKey(this.crypto, [], generation);
      return { id: key.name, generation, secret: key.secret };
    });
    return { provider, ...plan, staged: { provider, keys: aesgcmKeysOf(plan.staged) }, active: { provider, keys: aesgcmKeysOf(plan.active) } };
  }

  /** Stage step on this node: the new key decrypts here from now on, and does not encrypt yet. */
  async stageKey(config: ClusterSecurityConfig, sent: EncryptionKeys, keyId: string): Promise<KeyChange> {
    return this.changeKeys(config, sent, (local, remote) => applyStage(local, remote, keyId), (store, ring) => store.stage(ring, keyId));
  }

  /** Activate step on this node: the staged key becomes the write key (the apiserver follows within a minute). */
  async activateKey(config: ClusterSecurityConfig, sent: EncryptionKeys, keyId: string): Promise<KeyChange> {
    return this.changeKeys(config, sent, (local, remote) => applyActivate(local, remote, keyId), (store, ring) => store.activate(ring, keyId));
  }

  /** Rollback of a stage on this node: removes the staged key (never one that may have encrypted data). */
  async discardStagedKey(config: ClusterSecurityConfig, keyId: string): Promise<KeyChange> {
    if (rotatingProvider(config) === 'kms') {
      await this.kekStore().discard(keyId);
      return { summary: this.keySummary(config), files: [] };
    }
    return this.aesgcmChange(config, discardStagedKey(aesgcmKeySet(this.aesgcmKeys()), keyId));
  }

  private async changeKeys(
    config: ClusterSecurityConfig,
    sent: EncryptionKeys,
    aesgcm: (local: KeySet<VersionedKey>, remote: KeySet<VersionedKey>) => KeySet<VersionedKey>,
    kms: (store: KekStore, ring: KekRingDocument) => Promise<KekInfo[]>,
  ): Promise<KeyChange> {
    const provider = rotatingProvider(config);
    if (sent.provider !== provider) throw new SecurityError(`this node encrypts with ${provider}, the rotating node sent ${sent.provider} keys; restart k8sd on both`);
    if (sent.provider === 'kms') {
      await kms(this.kekStore(), sent.ring);
      return { summary: this.keySummary(config), files: [] };
    }
    return this.aesgcmChange(config, aesgcm(aesgcmKeySet(this.aesgcmKeys()), aesgcmKeySet(sent.keys)));
  }

  private aesgcmChange(config: ClusterSecurityConfig, set: KeySet<VersionedKey>): KeyChange {
    const settings = securitySettingsFrom(config, aesgcmKeysOf(set));
    return { summary: summaryOf('aesgcm', set), files: encryptionFiles(this.layout, settings.encryption) };
  }

  /**
   * Rewrites every Secret with the current write key. For KMS it first waits until the
   * apiserver has adopted the current KEK, otherwise the rewrite would reuse the old one.
   */
  async reencrypt(config: ClusterSecurityConfig, core: SecretsApi, options: ReencryptOptions & { adoptionTimeoutMs?: number } = {}): Promise<ReencryptReport> {
    if (this.lastReencrypt?.state === 'running') throw new SecurityError('a re-encryption is already running; wait for it (see status)');
    const targetKeyId = config.secretsEncryption === 'kms' ? this.store?.currentKeyId
      : config.secretsEncryption === 'aesgcm' ? readAesgcmKeys(encryptionPaths(this.layout).configFile)[0]?.name
      : 'identity';
    if (!targetKeyId) throw new SecurityError('no write key found; run k8sd on a control-plane node with encryption enabled');
    const startedAt = new Date().toISOString();
    this.lastReencrypt = { state: 'running', targetKeyId, startedAt, rewritten: 0, failed: 0 };
    try {
      if (config.secretsEncryption === 'kms' && this.server) await this.server.waitForKeyAdoption(targetKeyId, options.adoptionTimeoutMs);
      const report = await reencryptSecrets(core, {
        ...options,
        onProgress: (progress) => {
          if (this.lastReencrypt) this.lastReencrypt = { ...this.lastReencrypt, rewritten: progress.rewritten, failed: progress.failed };
          options.onProgress?.(progress);
        },
        ...(this.logger ? { logger: this.logger } : {}),
      });
      this.lastReencrypt = {
        state: report.failed.length === 0 ? 'finished' : 'failed',
        targetKeyId,
        startedAt,
        finishedAt: report.finishedAt,
        rewritten: report.rewritten,
        failed: report.failed.length,
      };
      return report;
    } catch (error) {
      this.lastReencrypt = { ...this.lastReencrypt, state: 'failed', finishedAt: new Date().toISOString() };
      throw error;
    }
  }

  /** Data for `k8s secrets-encryption status`; never contains key material. */
  status(config: ClusterSecurityConfig): SecretsEncryptionStatus {
    const settings = securitySettingsFrom(config, readAesgcmKeys(encryptionPaths(this.layout).configFile));
    const lastEncrypt = this.server?.lastEncrypt();
    return secretsEncryptionStatus({
      layout: this.layout,
      settings: settings.encryption,
      ...(this.store ? { keks: this.store.list() } : {}),
      ...(lastEncrypt ? { lastEncrypt } : {}),
      ...(this.lastReencrypt ? { reencrypt: this.lastReencrypt } : {}),
    });
  }
}
