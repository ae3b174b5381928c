// The snapshot file: an etcd backend database plus what a restore needs (the manifest with the
// encryption-at-rest keys), sealed with AES-256-GCM in chunks under a per-file key.
//
//   "K8SDSNAP" | u32 header length | header JSON | { u32 length | iv | ciphertext | tag }*
//
// The header holds no secret: the format, the snapshot key's id (a fingerprint), the per-file salt
// and the chunk size. Every chunk's associated data binds it to the header (SHA-256 of the bytes
// before the first chunk), to its index and to whether it is the last one, so a flipped byte, a
// reordered, dropped or appended chunk, a truncated file or an edited header all fail to open.
// The plaintext is u32 manifest length | manifest JSON | the etcd database.
import type { CryptoBackend } from '../crypto/types.js';
import type { KekRingDocument } from '../security/index.js';
import type { SnapshotKey } from './key.js';

export const SNAPSHOT_FORMAT = 'k8sd-etcd-snapshot/v1';
const MAGIC = Buffer.from('K8SDSNAP', 'ascii');
const CHUNK_BYTES = 4 * 1024 * 1024;
const GCM_OVERHEAD = 12 + 16;
const MAX_HEADER_BYTES = 4096;
/** The snapshot file's extension. */
export const SNAPSHOT_EXTENSION = '.k8s-snapshot';

export class SnapshotFormatError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'SnapshotFormatError';
  }
}

/** Raised when the file does not authenticate: altered, truncated, or sealed under another key. */
export class SnapshotIntegrityError extends SnapshotFormatError {
  constructor(file: string, reason: string) {
    super(file, reason);
    this.name = 'SnapshotIntegrityError';
  }
}

export interface SnapshotHeader {
  format: typeof SNAPSHOT_FORMAT;
  keyId: string;
  salt: string;
  chunkBytes: number;
}

/** What a snapshot holds besides the database. Encrypted with it; never written in the clear. */
export interface SnapshotManifest {
  name: string;
  createdAt: string;
  node: string;
  etcdVersion: string;
  /** etcd's view of the database (etcdutl snapshot status). */
  revision: number;
  totalKeys: number;
  dbBytes: number;
  dbSha256: string;
  /** Encryption at rest of the cluster when the snapshot was taken, and its keys. */
  secretsEncryption: 'kms' | 'aesgcm' | 'none';
  kekRing?: KekRingDocument;
  aesgcmConfig?: string;
}

export interface SnapshotContent {
  manifest: SnapshotManifest;
  db: Buffer;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function chunkAad(headerDigest: Buffer, index: number, last: boolean): Buffer {
  const b = Buffer.alloc(9);
  b.writeBigUInt64BE(BigInt(index));
  b[8] = last ? 1 : 0;
  return Buffer.concat([headerDigest, b]);
}

/** Seals a snapshot under `key` (a fresh salt, hence a fresh file key, every time). */
export async function sealSnapshot(crypto: CryptoBackend, key: SnapshotKey, content: SnapshotContent): Promise<Buffer> {
  const salt = await crypto.randomBytes(32);
  const header: SnapshotHeader = { format: SNAPSHOT_FORMAT, keyId: key.id, salt: salt.toString('base64'), chunkBytes: CHUNK_BYTES };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.concat([MAGIC, u32(headerBytes.length), headerBytes]);
  const digest = await crypto.sha256(prefix);
  const fileKey = await key.fileKey(salt);
  const manifest = Buffer.from(JSON.stringify(content.manifest), 'utf8');
  const plain = Buffer.concat([u32(manifest.length), manifest, content.db]);
  const parts: Buffer[] = [prefix];
  const count = Math.max(1, Math.ceil(plain.length / CHUNK_BYTES));
  for (let i = 0; i < count; i++) {
    const sealed = await crypto.encrypt(fileKey, plain.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES), chunkAad(digest, i, i === count - 1));
    parts.push(u32(sealed.length), sealed);
  }
  return Buffer.concat(parts);
}

/** The header of a snapshot file, checked for shape only (it is authenticated when the chunks open). */
export function readSnapshotHeader(file: string, bytes: Buffer): { header: SnapshotHeader; prefixLength: number } {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new SnapshotFormatError(file, `is not a k8s snapshot (no "${MAGIC.toString()}" header); give a file written by "k8s snapshot save"`);
  }
  const length = bytes.readUInt32BE(MAGIC.length);
  const start = MAGIC.length + 4;
  if (length === 0 || length > MAX_HEADER_BYTES || start + length > bytes.length) throw new SnapshotIntegrityError(file, 'the snapshot header is damaged or truncated');
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.subarray(start, start + length).toString('utf8'));
  } catch {
    throw new SnapshotIntegrityError(file, 'the snapshot header is damaged (not JSON)');
  }
  const h = raw as Partial<SnapshotHeader>;
  if (h.format !== SNAPSHOT_FORMAT) throw new SnapshotFormatError(file, `has format "${String(h.format)}"; this k8sd reads "${SNAPSHOT_FORMAT}"`);
  if (typeof h.keyId !== 'string' || typeof h.salt !== 'string' || typeof h.chunkBytes !== 'number' || h.chunkBytes < 1 || h.chunkBytes > 64 * 1024 * 1024) {
    throw new SnapshotIntegrityError(file, 'the snapshot header is damaged (keyId, salt or chunkBytes missing)');
  }
  return { header: { format: SNAPSHOT_FORMAT, keyId: h.keyId, salt: h.salt, chunkBytes: h.chunkBytes }, prefixLength: start + length };
}

/**
 * Opens and fully authenticates a snapshot. Refuses a file sealed under another snapshot key
 * (another cluster) before any decryption, and any altered byte after.
 */
export async function openSnapshot(crypto: CryptoBackend, key: SnapshotKey, file: string, bytes: Buffer): Promise<SnapshotContent> {
  const { header, prefixLength } = readSnapshotHeader(file, bytes);
  if (header.keyId !== key.id) {
    throw new SnapshotIntegrityError(
      file,
      `was sealed with snapshot key ${header.keyId}, but this node holds ${key.id}: it belongs to another cluster (or the key was replaced); restore it on a control-plane node of the cluster it came from`,
    );
  }
  const digest = await crypto.sha256(bytes.subarray(0, prefixLength));
  const fileKey = await key.fileKey(Buffer.from(header.salt, 'base64'));
  const chunks: Buffer[] = [];
  let offset = prefixLength;
  for (let index = 0; ; index++) {
    if (offset + 4 > bytes.length) throw new SnapshotIntegrityError(file, 'is truncated (its last chunk is missing); use an intact copy');
    const length = bytes.readUInt32BE(offset);
    const end = offset + 4 + length;
    if (length < GCM_OVERHEAD || length > header.chunkBytes + GCM_OVERHEAD || end > bytes.length) {
      throw new SnapshotIntegrityError(file, `chunk ${index} is damaged or truncated; use an intact copy`);
    }
    const last = end === bytes.length;
    try {
      chunks.push(await crypto.decrypt(fileKey, bytes.subarray(offset + 4, end), chunkAad(digest, index, last)));
    } catch {
      throw new SnapshotIntegrityError(file, `chunk ${index} failed authentication: the file was altered or truncated; nothing was changed — use an intact copy`);
    }
    offset = end;
    if (last) break;
  }
  const plain = Buffer.concat(chunks);
  if (plain.length < 4) throw new SnapshotIntegrityError(file, 'holds no manifest');
  const manifestLength = plain.readUInt32BE(0);
  if (4 + manifestLength > plain.length) throw new SnapshotIntegrityError(file, 'its manifest is truncated');
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(plain.subarray(4, 4 + manifestLength).toString('utf8')) as SnapshotManifest;
  } catch {
    throw new SnapshotIntegrityError(file, 'its manifest is not JSON');
  }
  const db = plain.subarray(4 + manifestLength);
  if (db.length !== manifest.dbBytes) throw new SnapshotIntegrityError(file, `holds ${db.length} database bytes, its manifest says ${manifest.dbBytes}`);
  const sha = (await crypto.sha256(db)).toString('hex');
  if (sha !== manifest.dbSha256) throw new SnapshotIntegrityError(file, 'the database does not match its checksum');
  return { manifest, db };
}
