// The snapshot file: what a restore needs (a manifest with the encryption-at-rest keys) and the
// etcd backend database, sealed with AES-256-GCM in chunks under a per-file key.
//
//   "K8SDSNAP" | u32 header length | header JSON | { u32 length | iv | ciphertext | tag }*
//
// The header holds no secret: the format, the snapshot key's id (a fingerprint), the per-file salt
// and the chunk size. Chunk 0 is the manifest, the others the database in pieces of chunkBytes.
// Every chunk's associated data binds it to the header (SHA-256 of the bytes before the first
// chunk), to its index and to whether it is the last one, so a flipped byte, a reordered, dropped or
// appended chunk, a truncated file or an edited header all fail to open. Sealing and opening stream
// through the chunks: the database is never held in memory whole (etcd allows 8 GiB).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { CryptoBackend } from '../crypto/types.js';
import { writeAll } from '../host/files.js';
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
  /** Encryption at rest of the cluster when the snapshot was taken, and its keys. */
  secretsEncryption: 'kms' | 'aesgcm' | 'none';
  kekRing?: KekRingDocument;
  aesgcmConfig?: string;
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

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * Seals `manifest` and the database file `dbFile` under `key` (a fresh salt, hence a fresh file
 * key, every time), writing the snapshot to the descriptor `out`. Returns the bytes written.
 */
export async function sealSnapshot(crypto: CryptoBackend, key: SnapshotKey, manifest: SnapshotManifest, dbFile: string, out: number): Promise<number> {
  const salt = await crypto.randomBytes(32);
  const header: SnapshotHeader = { format: SNAPSHOT_FORMAT, keyId: key.id, salt: salt.toString('base64'), chunkBytes: CHUNK_BYTES };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.concat([MAGIC, u32(headerBytes.length), headerBytes]);
  const digest = await crypto.sha256(prefix);
  const fileKey = await key.fileKey(salt);
  const fd = openSync(dbFile, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size !== manifest.dbBytes) throw new SnapshotFormatError(dbFile, `is ${size} bytes, the manifest says ${manifest.dbBytes}`);
    const dbChunks = Math.ceil(size / CHUNK_BYTES);
    let written = 0;
    const put = async (index: number, plain: Buffer): Promise<void> => {
      const sealed = await crypto.encrypt(fileKey, plain, chunkAad(digest, index, index === dbChunks));
      const frame = Buffer.concat([u32(sealed.length), sealed]);
      writeAll(out, frame);
      written += frame.length;
    };
    writeAll(out, prefix);
    written += prefix.length;
    await put(0, Buffer.from(JSON.stringify(manifest), 'utf8'));
    for (let i = 0; i < dbChunks; i++) {
      const plain = readExactly(fd, Math.min(CHUNK_BYTES, size - i * CHUNK_BYTES), i * CHUNK_BYTES);
      if (plain.length === 0) throw new SnapshotFormatError(dbFile, 'shrank while it was sealed');
      await put(i + 1, plain);
    }
    return written;
  } finally {
    closeSync(fd);
  }
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

/** Reads the header of a snapshot file (shape only; the chunks authenticate it). */
export function readSnapshotFileHeader(file: string): SnapshotHeader {
  const fd = openSync(file, 'r');
  try {
    return readSnapshotHeader(file, readExactly(fd, MAGIC.length + 4 + MAX_HEADER_BYTES, 0)).header;
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens and fully authenticates the snapshot `file`, writing its database to the descriptor `dbOut`
 * and returning its manifest. Refuses a file sealed under another snapshot key (another cluster)
 * before any decryption, and any altered byte after. On error, `dbOut` holds a partial database:
 * the caller discards it.
 */
export async function openSnapshot(crypto: CryptoBackend, key: SnapshotKey, file: string, dbOut: number): Promise<SnapshotManifest> {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const { header, prefixLength } = readSnapshotHeader(file, readExactly(fd, MAGIC.length + 4 + MAX_HEADER_BYTES, 0));
    if (header.keyId !== key.id) {
      throw new SnapshotIntegrityError(
        file,
        `was sealed with snapshot key ${header.keyId}, but this node holds ${key.id}: it belongs to another cluster (or the key was replaced); restore it on a control-plane node of the cluster it came from`,
      );
    }
    const digest = await crypto.sha256(readExactly(fd, prefixLength, 0));
    const fileKey = await key.fileKey(Buffer.from(header.salt, 'base64'));
    let manifest: SnapshotManifest | undefined;
    let dbBytes = 0;
    let offset = prefixLength;
    for (let index = 0; ; index++) {
      if (offset + 4 > size) throw new SnapshotIntegrityError(file, 'is truncated (its last chunk is missing); use an intact copy');
      const length = readExactly(fd, 4, offset).readUInt32BE(0);
      const end = offset + 4 + length;
      if (length < GCM_OVERHEAD || length > Math.max(header.chunkBytes, 1024 * 1024) + GCM_OVERHEAD || end > size) {
        throw new SnapshotIntegrityError(file, `chunk ${index} is damaged or truncated; use an intact copy`);
      }
      const last = end === size;
      let plain: Buffer;
      try {
        plain = await crypto.decrypt(fileKey, readExactly(fd, length, offset + 4), chunkAad(digest, index, last));
      } catch {
        throw new SnapshotIntegrityError(file, `chunk ${index} failed authentication: the file was altered or truncated; nothing was changed — use an intact copy`);
      }
      if (index === 0) {
        try {
          manifest = JSON.parse(plain.toString('utf8')) as SnapshotManifest;
        } catch {
          throw new SnapshotIntegrityError(file, 'its manifest is not JSON');
        }
      } else {
        writeAll(dbOut, plain);
        dbBytes += plain.length;
      }
      offset = end;
      if (last) break;
    }
    if (!manifest || typeof manifest.dbBytes !== 'number') throw new SnapshotIntegrityError(file, 'holds no manifest');
    if (dbBytes !== manifest.dbBytes) throw new SnapshotIntegrityError(file, `holds ${dbBytes} database bytes, its manifest says ${manifest.dbBytes}`);
    return manifest;
  } finally {
    closeSync(fd);
  }
}
