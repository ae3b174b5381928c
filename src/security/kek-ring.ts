// The local key-encryption keys (KEKs) behind the k8sd KMS v2 plugin.
//
// kube-apiserver generates data-encryption keys (DEKs) itself and asks the plugin
// to wrap them. The plugin wraps each DEK with AES-256-GCM under the current KEK and
// reports that KEK's id as key_id. KEKs live only in this file (never in etcd), so an
// etcd snapshot alone does not reveal any Secret. Old KEKs stay in the ring so data
// written before a rotation can still be read; a KEK can be retired only after every
// object has been re-encrypted.
//
// A KEK newer than the current one is *staged*: a cluster-wide rotation first puts the new
// KEK on every control-plane node (decrypt only), then makes it current everywhere, so no
// apiserver wraps a DEK under a KEK that another node's plugin lacks. The merge rules that
// keep this deterministic on every node are in ./key-sets.ts.
import { chmod, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CryptoBackend } from '../crypto/types.js';
import type { Layout } from '../layout.js';
import { CiphertextError, KekRingError, SecuritySettingsError, UnknownKeyIdError } from './errors.js';
import { writeFileAtomic } from '../host/files.js';
import { SECRET_FILE_MODE, ensureSecretDir, type SecurityFile } from './files.js';
import { applyActivate, applyStage, discardStagedKey, mergeKeySets, stageKey, type KeySet } from './key-sets.js';
import type { SecurityLogger } from './logger.js';

export const KEK_RING_FORMAT = 'k8sd-kms-kek-ring/v1';
export const KEK_BYTES = 32;
/** First byte of every wrapped DEK, so the format can change without guessing. */
const WRAP_FORMAT_VERSION = 1;
/** AES-GCM framing added by CryptoBackend.encrypt: iv(12) + tag(16). */
const GCM_OVERHEAD = 12 + 16;
/** KMS v2 requires ciphertext < 1 kB; 1 version byte + GCM overhead + plaintext must stay below. */
export const MAX_WRAP_PLAINTEXT_BYTES = 1023 - 1 - GCM_OVERHEAD;
const KEK_ID_PATTERN = /^kek-([1-9][0-9]*)-([0-9a-f]{16})$/;

export interface KmsPaths {
  /** Directory holding the KEK ring (0700). */
  dir: string;
  /** The KEK ring (0600). */
  ringFile: string;
  /** Directory of the plugin socket (0700). */
  socketDir: string;
  /** The unix socket kube-apiserver dials. */
  socket: string;
}

export function kmsPaths(layout: Layout): KmsPaths {
  return {
    dir: layout.common('etc', 'kms'),
    ringFile: layout.common('etc', 'kms', 'kek-ring.json'),
    socketDir: layout.common('run', 'kms'),
    socket: layout.common('run', 'kms', 'kms.sock'),
  };
}

/** One KEK as stored on disk. `secret` is base64 key material: never log it. */
export interface KekRecord {
  id: string;
  generation: number;
  createdAt: string;
  secret: string;
}

/**
 * The ring file. Holds key material: never log it, only ever write it 0600. `current` wraps
 * new DEKs; keys of a higher generation are staged (see the top of this file).
 */
export interface KekRingDocument extends KeySet<KekRecord> {
  format: typeof KEK_RING_FORMAT;
}

/** What can be shown about a KEK (status, logs). */
export interface KekInfo {
  id: string;
  generation: number;
  createdAt: string;
  current: boolean;
  /** Newer than the current KEK: on its way to every node, decrypts, not yet used to wrap. */
  staged: boolean;
}

export interface WrappedKey {
  ciphertext: Buffer;
  keyId: string;
}

/** KEK id: generation plus a fingerprint of the key, so ids never collide across clusters or rotations. */
export async function kekIdFor(crypto: CryptoBackend, generation: number, key: Buffer): Promise<string> {
  // Domain-separated hash: the fingerprint is never equal to a plain SHA-256 of the key.
  const digest = await crypto.sha256(Buffer.concat([Buffer.from('k8sd-kms-kek-id\0', 'utf8'), key]));
  return `kek-${generation}-${digest.subarray(0, 8).toString('hex')}`;
}

function aadFor(keyId: string): Buffer {
  // Binds each wrapped DEK to its KEK id: a ciphertext presented with another key_id fails.
  return Buffer.from(`k8sd-kms/v${WRAP_FORMAT_VERSION}/${keyId}`, 'utf8');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeSecret(file: string, id: string, secret: string): Buffer {
  const key = Buffer.from(secret, 'base64');
  if (key.length !== KEK_BYTES || key.toString('base64') !== secret) {
    throw new KekRingError(file, `key ${id} is not ${KEK_BYTES} bytes of base64; restore the ring from a backup`);
  }
  return key;
}

/**
 * Validates a ring document (from disk or from another node). Checks structure, unique
 * ids and generations, key length, and that `current` is one of the keys.
 * Does not verify id fingerprints (async); see verifyRingFingerprints.
 */
export function parseKekRing(text: string, source: string): KekRingDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new KekRingError(source, 'is not valid JSON; restore it from a backup or from another control-plane node');
  }
  if (!isRecord(raw) || raw.format !== KEK_RING_FORMAT) {
    throw new KekRingError(source, `is not a "${KEK_RING_FORMAT}" document`);
  }
  if (typeof raw.current !== 'string' || !Array.isArray(raw.keys) || raw.keys.length === 0) {
    throw new KekRingError(source, 'needs a "current" key id and a non-empty "keys" list');
  }
  const keys: KekRecord[] = [];
  const ids = new Set<string>();
  const generations = new Set<number>();
  for (const [index, entry] of raw.keys.entries()) {
    if (!isRecord(entry) || typeof entry.id !== 'string' || typeof entry.secret !== 'string' ||
        typeof entry.createdAt !== 'string' || typeof entry.generation !== 'number') {
      throw new KekRingError(source, `keys[${index}] needs string id, secret, createdAt and a numeric generation`);
    }
    const match = KEK_ID_PATTERN.exec(entry.id);
    if (!match || Number(match[1]) !== entry.generation) {
      throw new KekRingError(source, `keys[${index}].id "${entry.id}" does not match "kek-<generation>-<16 hex>" with generation ${entry.generation}`);
    }
    if (ids.has(entry.id) || generations.has(entry.generation)) {
      throw new KekRingError(source, `keys[${index}] repeats id or generation ${entry.generation}`);
    }
    decodeSecret(source, entry.id, entry.secret);
    ids.add(entry.id);
    generations.add(entry.generation);
    keys.push({ id: entry.id, generation: entry.generation, createdAt: entry.createdAt, secret: entry.secret });
  }
  keys.sort((a, b) => a.generation - b.generation);
  if (!ids.has(raw.current)) {
    throw new KekRingError(source, `current key "${raw.current}" is not one of its keys; restore the ring from another control-plane node`);
  }
  return { format: KEK_RING_FORMAT, current: raw.current, keys };
}

/** Checks that every id's fingerprint matches its key (catches a hand-edited or corrupted ring). */
export async function verifyRingFingerprints(crypto: CryptoBackend, ring: KekRingDocument, source: string): Promise<void> {
  for (const record of ring.keys) {
    const expected = await kekIdFor(crypto, record.generation, decodeSecret(source, record.id, record.secret));
    if (expected !== record.id) {
      throw new KekRingError(source, `key ${record.id} does not match its fingerprint; the ring was altered — restore it from a backup`);
    }
  }
}

/** A ring document from a key set (the rotation rules in ./key-sets.ts work on key sets). */
export function kekRingOf(set: KeySet<KekRecord>): KekRingDocument {
  return { format: KEK_RING_FORMAT, current: set.current, keys: set.keys.map((k) => ({ id: k.id, generation: k.generation, createdAt: k.createdAt, secret: k.secret })) };
}

/**
 * Union of two rings. Deterministic, so every control-plane node that merges the same rings
 * ends with the same current KEK: the newer of the two current ones (a staged KEK stays
 * staged). Two different KEKs with the same generation mean two nodes rotated concurrently:
 * that is refused.
 */
export function mergeKekRings(local: KekRingDocument, remote: KekRingDocument): KekRingDocument {
  return kekRingOf(mergeKeySets(local, remote));
}

/** A new random KEK of the given generation. */
export async function generateKek(crypto: CryptoBackend, generation: number, now: Date = new Date()): Promise<KekRecord> {
  const key = await crypto.randomBytes(KEK_BYTES);
  if (key.length !== KEK_BYTES) throw new KekRingError('(new key)', `crypto backend returned ${key.length} random bytes, wanted ${KEK_BYTES}`);
  return { id: await kekIdFor(crypto, generation, key), generation, createdAt: now.toISOString(), secret: key.toString('base64') };
}

function ringFile(file: string, ring: KekRingDocument): SecurityFile {
  return { path: file, content: `${JSON.stringify(ring, null, 2)}\n`, mode: SECRET_FILE_MODE };
}

export interface KekStoreOptions {
  /** The ring file, normally kmsPaths(layout).ringFile. */
  file: string;
  crypto: CryptoBackend;
  /** Create a ring with one KEK when the file does not exist (bootstrap). Default true. */
  create?: boolean;
  /**
   * A ring received from another control-plane node (join). Written when the file does
   * not exist, merged into it when it does; takes precedence over `create`.
   */
  seed?: KekRingDocument;
  logger?: SecurityLogger;
  /** Writer for the ring file; defaults to the host atomic writer (temp file + fsync + rename). */
  write?: (file: SecurityFile) => Promise<void>;
  now?: () => Date;
}

/** The KEK ring of one node: wraps and unwraps DEKs, rotates, retires and merges KEKs. */
export class KekStore {
  private ring: KekRingDocument;
  private keys: Map<string, Buffer>;
  private fileStamp: string;
  private mutation: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: Required<Pick<KekStoreOptions, 'file' | 'crypto' | 'write' | 'now'>> & { logger: SecurityLogger | undefined },
    ring: KekRingDocument,
    fileStamp: string,
  ) {
    this.ring = ring;
    this.keys = KekStore.keyMap(options.file, ring);
    this.fileStamp = fileStamp;
  }

  /** Opens the ring file, creating it with a first KEK when allowed. */
  static async open(options: KekStoreOptions): Promise<KekStore> {
    const resolved = {
      file: options.file,
      crypto: options.crypto,
      write: options.write ?? (async (file: SecurityFile) => writeFileAtomic(file.path, file.content, file.mode)),
      now: options.now ?? (() => new Date()),
      logger: options.logger,
    };
    await ensureSecretDir(path.dirname(options.file));
    const existing = await KekStore.readRing(resolved.file, resolved.crypto, resolved.logger);
    if (existing) {
      const store = new KekStore(resolved, existing.ring, existing.stamp);
      if (options.seed) await store.adopt(options.seed, 'seed ring');
      return store;
    }
    if (options.seed) {
      const seed = parseKekRing(JSON.stringify(options.seed), 'seed ring');
      await verifyRingFingerprints(resolved.crypto, seed, 'seed ring');
      await resolved.write(ringFile(resolved.file, seed));
      resolved.logger?.info('installed KMS KEK ring from another control-plane node', { file: resolved.file, keyId: seed.current });
      return new KekStore(resolved, seed, await KekStore.stamp(resolved.file));
    }
    if (options.create === false) {
      throw new KekRingError(options.file, 'does not exist; copy the ring from another control-plane node (k8sd does this on join)');
    }
    const first = await generateKek(resolved.crypto, 1, resolved.now());
    const ring: KekRingDocument = { format: KEK_RING_FORMAT, current: first.id, keys: [first] };
    await resolved.write(ringFile(resolved.file, ring));
    // Right on bootstrap; wrong on a node that joined a cluster (its peers lack this KEK).
    resolved.logger?.warn('created a new KMS KEK ring; on a joined control-plane node this is a mistake: copy the cluster ring instead', { file: resolved.file, keyId: first.id });
    return new KekStore(resolved, ring, await KekStore.stamp(resolved.file));
  }

  get file(): string {
    return this.options.file;
  }

  get currentKeyId(): string {
    return this.ring.current;
  }

  /** KEKs without key material, oldest first. */
  list(): KekInfo[] {
    const current = this.ring.keys.find((k) => k.id === this.ring.current)!.generation;
    return this.ring.keys.map((k) => ({ id: k.id, generation: k.generation, createdAt: k.createdAt, current: k.id === this.ring.current, staged: k.generation > current }));
  }

  has(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  /** Wraps a DEK (or DEK seed) under the current KEK. */
  async wrap(plaintext: Buffer): Promise<WrappedKey> {
    if (plaintext.length === 0 || plaintext.length > MAX_WRAP_PLAINTEXT_BYTES) {
      throw new CiphertextError(`plaintext must be 1..${MAX_WRAP_PLAINTEXT_BYTES} bytes to keep the ciphertext under 1 kB; got ${plaintext.length}`);
    }
    // Read id and key together, before any await, so a concurrent rotate cannot split them.
    const keyId = this.ring.current;
    const key = this.keys.get(keyId)!;
    const sealed = await this.options.crypto.encrypt(key, plaintext, aadFor(keyId));
    return { ciphertext: Buffer.concat([Buffer.from([WRAP_FORMAT_VERSION]), sealed]), keyId };
  }

  /** Unwraps a DEK with the KEK named by keyId. */
  async unwrap(ciphertext: Buffer, keyId: string): Promise<Buffer> {
    const key = this.keys.get(keyId);
    if (!key) throw new UnknownKeyIdError(keyId);
    if (ciphertext.length < 1 + GCM_OVERHEAD + 1 || ciphertext[0] !== WRAP_FORMAT_VERSION) {
      throw new CiphertextError(`ciphertext for key_id "${keyId}" is not a k8sd KMS v${WRAP_FORMAT_VERSION} wrapped key`);
    }
    try {
      return await this.options.crypto.decrypt(key, ciphertext.subarray(1), aadFor(keyId));
    } catch {
      throw new CiphertextError(`ciphertext for key_id "${keyId}" failed authentication: it was altered, truncated or wrapped under another KEK`);
    }
  }

  /**
   * Adds a new KEK and makes it current at once. Only right when this node is the whole
   * control plane; a cluster stages the KEK on every node first (k8sd's cluster rotation).
   * kube-apiserver notices the new key_id on its next Status poll (up to a minute) and
   * then wraps a fresh DEK; re-encrypt Secrets after that to move old data to the new KEK.
   */
  rotate(): Promise<KekInfo> {
    return this.serialized(async () => {
      const generation = this.ring.keys[this.ring.keys.length - 1]!.generation + 1;
      const record = await generateKek(this.options.crypto, generation, this.options.now());
      await this.replace(kekRingOf({ current: record.id, keys: stageKey(this.ring, record).keys }));
      this.options.logger?.info('rotated KMS KEK', { keyId: record.id, generation });
      return { id: record.id, generation, createdAt: record.createdAt, current: true, staged: false };
    });
  }

  /**
   * Stage step of a cluster rotation: merges the ring the rotating node sent and keeps
   * `keyId` staged (decrypts, does not wrap); a staged KEK of an earlier, interrupted
   * rotation is dropped. Written to disk before the reply.
   */
  stage(sent: KekRingDocument, keyId: string, source = 'staged ring'): Promise<KekInfo[]> {
    return this.serialized(async () => {
      const checked = await this.checked(sent, source);
      await this.replaceIfChanged(kekRingOf(applyStage(this.ring, checked, keyId)), 'staged KMS KEK', { keyId });
      return this.list();
    });
  }

  /** Activate step of a cluster rotation: merges the ring sent and makes `keyId` current. */
  activate(sent: KekRingDocument, keyId: string, source = 'activated ring'): Promise<KekInfo[]> {
    return this.serialized(async () => {
      const checked = await this.checked(sent, source);
      await this.replaceIfChanged(kekRingOf(applyActivate(this.ring, checked, keyId)), 'activated KMS KEK', { keyId });
      return this.list();
    });
  }

  /** Rollback of a stage: removes a staged KEK. Refuses the current or an older KEK; no-op when absent. */
  discard(keyId: string): Promise<KekInfo[]> {
    return this.serialized(async () => {
      await this.replaceIfChanged(kekRingOf(discardStagedKey(this.ring, keyId)), 'discarded staged KMS KEK', { keyId });
      return this.list();
    });
  }

  /**
   * Removes an old KEK. Only safe once every object wrapped under it has been
   * re-encrypted on every control-plane node; the current KEK can never be retired.
   */
  retire(keyId: string): Promise<void> {
    return this.serialized(async () => {
      if (keyId === this.ring.current) {
        throw new SecuritySettingsError('kms.retire', `"${keyId}" is the current KEK; rotate first, re-encrypt, then retire it`);
      }
      if (!this.keys.has(keyId)) throw new UnknownKeyIdError(keyId);
      await this.replace({ ...this.ring, keys: this.ring.keys.filter((k) => k.id !== keyId) });
      this.options.logger?.info('retired KMS KEK', { keyId });
    });
  }

  /** The whole ring, key material included, for k8sd to copy to a joining control-plane node over mTLS. */
  exportRing(): KekRingDocument {
    return { format: KEK_RING_FORMAT, current: this.ring.current, keys: this.ring.keys.map((k) => ({ ...k })) };
  }

  /** Merges a ring received from another control-plane node and persists the result. */
  adopt(remote: KekRingDocument, source = 'remote ring'): Promise<KekInfo[]> {
    return this.serialized(async () => {
      const merged = mergeKekRings(this.ring, await this.checked(remote, source));
      await this.replaceIfChanged(merged, 'merged KMS KEK ring', { source, keys: merged.keys.length });
      return this.list();
    });
  }

  /** A ring from elsewhere, validated like the file: structure and every id's fingerprint. */
  private async checked(ring: KekRingDocument, source: string): Promise<KekRingDocument> {
    const parsed = parseKekRing(JSON.stringify(ring), source);
    await verifyRingFingerprints(this.options.crypto, parsed, source);
    return parsed;
  }

  private async replaceIfChanged(ring: KekRingDocument, message: string, fields: Record<string, unknown>): Promise<void> {
    if (JSON.stringify(ring) === JSON.stringify(this.ring)) return;
    await this.replace(ring);
    this.options.logger?.info(message, { ...fields, current: ring.current });
  }

  /** Re-reads the ring file when another writer replaced it. Returns true when it changed. */
  reloadIfChanged(): Promise<boolean> {
    return this.serialized(async () => {
      const stamp = await KekStore.stamp(this.options.file);
      if (stamp === this.fileStamp) return false;
      const loaded = await KekStore.readRing(this.options.file, this.options.crypto, this.options.logger);
      if (!loaded) throw new KekRingError(this.options.file, 'disappeared; restore it from a backup or another control-plane node');
      this.ring = loaded.ring;
      this.keys = KekStore.keyMap(this.options.file, loaded.ring);
      this.fileStamp = loaded.stamp;
      this.options.logger?.info('reloaded KMS KEK ring', { file: this.options.file, current: loaded.ring.current });
      return true;
    });
  }

  private async replace(ring: KekRingDocument): Promise<void> {
    await this.options.write(ringFile(this.options.file, ring));
    this.ring = ring;
    this.keys = KekStore.keyMap(this.options.file, ring);
    this.fileStamp = await KekStore.stamp(this.options.file);
  }

  private serialized<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.mutation.then(operation, operation);
    this.mutation = next.catch(() => undefined);
    return next;
  }

  private static keyMap(file: string, ring: KekRingDocument): Map<string, Buffer> {
    return new Map(ring.keys.map((k) => [k.id, decodeSecret(file, k.id, k.secret)]));
  }

  private static async stamp(file: string): Promise<string> {
    try {
      const info = await stat(file);
      return `${info.ino}:${info.size}:${info.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  private static async readRing(
    file: string,
    crypto: CryptoBackend,
    logger: SecurityLogger | undefined,
  ): Promise<{ ring: KekRingDocument; stamp: string } | undefined> {
    let text: string;
    let mode: number;
    let stamp: string;
    try {
      const info = await stat(file);
      mode = info.mode & 0o777;
      stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
      text = await readFile(file, 'utf8');
    } catch (error) {
      if (isRecord(error) && error.code === 'ENOENT') return undefined;
      throw new KekRingError(file, `cannot be read (${error instanceof Error ? error.message : String(error)}); k8sd must run as root`);
    }
    if ((mode & 0o077) !== 0) {
      await chmod(file, SECRET_FILE_MODE);
      logger?.warn('KMS KEK ring was readable by group/others; reset to 0600', { file, mode: mode.toString(8) });
    }
    const ring = parseKekRing(text, file);
    await verifyRingFingerprints(crypto, ring, file);
    return { ring, stamp };
  }
}
