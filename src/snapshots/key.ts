// The key that seals etcd snapshots. It lives only on control-plane nodes, in a 0600 file beside
// k8sd's state (Layout.snapshotKeyFile), never in etcd and never in a snapshot: a snapshot file and
// the datastore it came from are ciphertext to anyone without a control-plane node's disk. The
// bootstrap node creates it; a joining control-plane node receives it in the pinned-mTLS join reply
// (as it receives the KMS KEK ring); workers never do; a node that leaves deletes it.
//
// Each snapshot file is sealed under its own file key, HKDF-SHA256(snapshot key, per-file salt),
// derived through the active CryptoBackend's HMAC (so host OpenSSL's FIPS provider in FIPS mode).
// All key handling of the snapshot feature is in this file, so it can be unified with the other
// control-plane-only keys (the PKI wrapping key, the KEK ring) in one place.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { CryptoBackend } from '../crypto/types.js';
import { writeFileAtomic } from '../host/files.js';
import { ControlPlaneKeyDocument, ControlPlaneKeyKind, generateControlPlaneKey, parseControlPlaneKey } from '../security/control-plane-key.js';
import { ensureSecretDir, SECRET_FILE_MODE } from '../security/files.js';

export const SNAPSHOT_KEY_FORMAT = 'k8sd-snapshot-key/v1';
const FILE_KEY_INFO = Buffer.from('k8sd-etcd-snapshot/v1 file key', 'utf8');

export class SnapshotKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotKeyError';
  }
}

/** The key as stored on a control-plane node. `secret` is base64 key material: never log it. */
export type SnapshotKeyDocument = ControlPlaneKeyDocument<typeof SNAPSHOT_KEY_FORMAT>;

const SNAPSHOT_KEY: ControlPlaneKeyKind<typeof SNAPSHOT_KEY_FORMAT> = {
  format: SNAPSHOT_KEY_FORMAT,
  idPrefix: 'snapkey',
  idLabel: 'k8sd-snapshot-key-id',
  error: (message) => new SnapshotKeyError(message),
};

/** HKDF-SHA256 (RFC 5869) for one 32-byte output block, on the backend's HMAC. */
async function hkdf32(crypto: CryptoBackend, ikm: Buffer, salt: Buffer, info: Buffer): Promise<Buffer> {
  const prk = await crypto.hmacSha256(salt, ikm);
  return crypto.hmacSha256(prk, Buffer.concat([info, Buffer.from([1])]));
}

export class SnapshotKey {
  private constructor(
    private readonly crypto: CryptoBackend,
    readonly document: SnapshotKeyDocument,
    private readonly key: Buffer,
  ) {}

  get id(): string {
    return this.document.id;
  }

  static async generate(crypto: CryptoBackend, now = new Date()): Promise<SnapshotKey> {
    const { document, key } = await generateControlPlaneKey(crypto, SNAPSHOT_KEY, now);
    return new SnapshotKey(crypto, document, key);
  }

  /** Validates a key document (from the file or a join reply); `source` names it in errors. */
  static async fromDocument(crypto: CryptoBackend, raw: unknown, source: string): Promise<SnapshotKey> {
    const { document, key } = await parseControlPlaneKey(crypto, SNAPSHOT_KEY, raw, source);
    return new SnapshotKey(crypto, document, key);
  }

  /** The AES-256-GCM key of one snapshot file. */
  fileKey(salt: Buffer): Promise<Buffer> {
    return hkdf32(this.crypto, this.key, salt, FILE_KEY_INFO);
  }
}

/** The snapshot key file of one node. */
export class SnapshotKeyStore {
  constructor(
    private readonly crypto: CryptoBackend,
    readonly file: string,
  ) {}

  exists(): boolean {
    return existsSync(this.file);
  }

  /** This node's key, or undefined when it has none (a worker, or a node that joined before snapshots existed). */
  async load(): Promise<SnapshotKey | undefined> {
    if (!existsSync(this.file)) return undefined;
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch {
      throw new SnapshotKeyError(`${this.file} is not valid JSON; copy it from another control-plane node`);
    }
    return SnapshotKey.fromDocument(this.crypto, raw, this.file);
  }

  /** This node's key; refuses (naming the fix) when there is none. */
  async require(): Promise<SnapshotKey> {
    const key = await this.load();
    if (!key) {
      throw new SnapshotKeyError(
        `this node holds no snapshot key (${this.file}); it is created on bootstrap and copied to control-plane nodes when they join — copy it (mode 0600) from another control-plane node`,
      );
    }
    return key;
  }

  /** Creates the key when the file does not exist (the bootstrap node); returns the node's key. */
  async ensure(): Promise<SnapshotKey> {
    const existing = await this.load();
    if (existing) return existing;
    const key = await SnapshotKey.generate(this.crypto);
    await this.install(key.document);
    return key;
  }

  /** Writes a key received from another control-plane node (join). */
  async install(raw: unknown, source = 'the snapshot key in the join reply'): Promise<void> {
    const key = await SnapshotKey.fromDocument(this.crypto, raw, source);
    await ensureSecretDir(path.dirname(this.file));
    writeFileAtomic(this.file, `${JSON.stringify(key.document)}\n`, SECRET_FILE_MODE);
  }

  remove(): void {
    rmSync(this.file, { force: true });
  }
}
