// One object for k8sd: turns the cluster's security settings into files and
// kube-apiserver flags, runs the KMS plugin, rotates keys and re-encrypts.
// It matches k8sd's SecurityProvider (files, apiserverArgs, beforeApiserver, stop).
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
  encryptionArgs,
  encryptionPaths,
  files as encryptionFiles,
  generateAesgcmKey,
  needsKmsPlugin,
  rotateAesgcmKeys,
  secretsEncryptionStatus,
} from './encryption.js';
import { SecurityError, SecuritySettingsError } from './errors.js';
import type { SecurityFile } from './files.js';
import { KekStore, kmsPaths, type KekInfo, type KekRingDocument } from './kek-ring.js';
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
    if (!this.store) throw new SecurityError('the KMS plugin is not running on this node; KEKs can only be exported from a control-plane node using KMS');
    return this.store.exportRing();
  }

  /**
   * Rotates the write key. KMS: new KEK (the apiserver picks it up on its next Status
   * poll). aesgcm: new first key in the config file, returned for k8sd to write (the
   * apiserver reloads it automatically). Follow with reencrypt(), then distribute the
   * new ring/config to the other control-plane nodes.
   */
  async rotate(config: ClusterSecurityConfig): Promise<{ keyId: string; files: SecurityFile[] }> {
    if (config.secretsEncryption === 'kms') {
      if (!this.store) throw new SecurityError('the KMS plugin is not running; start k8sd on a control-plane node first');
      const rotated: KekInfo = await this.store.rotate();
      return { keyId: rotated.id, files: [] };
    }
    if (config.secretsEncryption === 'aesgcm') {
      const keys = readAesgcmKeys(encryptionPaths(this.layout).configFile);
      const newKey = await generateAesgcmKey(this.crypto, keys);
      const settings = securitySettingsFrom(config, rotateAesgcmKeys(keys, newKey));
      return { keyId: newKey.name, files: encryptionFiles(this.layout, settings.encryption) };
    }
    throw new SecuritySettingsError('security.secrets-encryption', 'is "none"; enable kms or aesgcm before rotating keys');
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
