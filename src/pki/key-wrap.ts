// CA private keys and the service-account key never sit in etcd in the clear. k8sd wraps each one
// with AES-256-GCM (through the active CryptoBackend, so host OpenSSL's FIPS provider in FIPS mode)
// under a PKI wrapping key that lives only on control-plane nodes, in a 0600 file beside k8sd's
// state. A joining control-plane node receives it in the pinned-mTLS join reply (as it receives the
// KMS KEK ring); workers never do. So a copy of etcd, an etcd snapshot, or a read with the
// apiserver's etcd client certificate yields ciphertext only.
//
// Every read and write of a key in the PKI record or the CA-rotation record goes through
// wrapPrivateKey / unwrapPrivateKey below (via sealCaSet / openCaSet, used by ClusterState).
// Each wrapped value is bound (AES-GCM associated data) to the wrapping key id and to where it is
// stored, so a wrapped key cannot be moved to another slot (old CA key into the new CA's place).
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CryptoBackend } from '../crypto/types.js';
import { writeFileAtomic } from '../host/files.js';
import { ControlPlaneKeyDocument, ControlPlaneKeyKind, generateControlPlaneKey, parseControlPlaneKey } from '../security/control-plane-key.js';
import type { CaMaterial } from './signer.js';

export const PKI_WRAPPING_KEY_FORMAT = 'k8sd-pki-wrapping-key/v1';
/** Prefix of every wrapped value: format, then the wrapping key id, then base64(iv | ciphertext | tag). */
export const WRAPPED_VALUE_PREFIX = 'k8sd-wrapped/v1:';
const GCM_OVERHEAD = 12 + 16;

export class PkiKeyWrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PkiKeyWrapError';
  }
}

/** The wrapping key as stored on a control-plane node. `secret` is base64 key material: never log it. */
export type PkiWrappingKeyDocument = ControlPlaneKeyDocument<typeof PKI_WRAPPING_KEY_FORMAT>;

const WRAPPING_KEY: ControlPlaneKeyKind<typeof PKI_WRAPPING_KEY_FORMAT> = {
  format: PKI_WRAPPING_KEY_FORMAT,
  idPrefix: 'pkiwrap',
  idLabel: 'k8sd-pki-wrapping-key-id',
  error: (message) => new PkiKeyWrapError(message),
};

/** Validates a wrapping-key document (from the file or from a join reply); `source` names it in errors. */
export async function parseWrappingKey(crypto: CryptoBackend, raw: unknown, source: string): Promise<PkiWrappingKeyDocument> {
  return (await parseControlPlaneKey(crypto, WRAPPING_KEY, raw, source)).document;
}

/** Wraps and unwraps private keys for storage in the datastore. */
export class PkiKeyWrapper {
  private constructor(
    private readonly crypto: CryptoBackend,
    readonly document: PkiWrappingKeyDocument,
    private readonly key: Buffer,
  ) {}

  static async generate(crypto: CryptoBackend, now = new Date()): Promise<PkiKeyWrapper> {
    const { document, key } = await generateControlPlaneKey(crypto, WRAPPING_KEY, now);
    return new PkiKeyWrapper(crypto, document, key);
  }

  static async fromDocument(crypto: CryptoBackend, raw: unknown, source: string): Promise<PkiKeyWrapper> {
    const { document, key } = await parseControlPlaneKey(crypto, WRAPPING_KEY, raw, source);
    return new PkiKeyWrapper(crypto, document, key);
  }

  get keyId(): string {
    return this.document.id;
  }

  /** Wraps a private key PEM for the datastore slot `slot` (e.g. "pki/cluster/cas/ca"). */
  async wrapPrivateKey(slot: string, pem: string): Promise<string> {
    const sealed = await this.crypto.encrypt(this.key, Buffer.from(pem, 'utf8'), aadFor(this.keyId, slot));
    return `${WRAPPED_VALUE_PREFIX}${this.keyId}:${sealed.toString('base64')}`;
  }

  /** Unwraps a value wrapPrivateKey produced for the same slot. */
  async unwrapPrivateKey(slot: string, wrapped: string): Promise<string> {
    const parsed = parseWrapped(wrapped);
    if (!parsed) throw new PkiKeyWrapError(`${slot}: not a wrapped key`);
    if (parsed.keyId !== this.keyId) {
      throw new PkiKeyWrapError(
        `${slot} is wrapped with PKI wrapping key ${parsed.keyId}, but this node holds ${this.keyId}; copy the wrapping key file from a control-plane node that works`,
      );
    }
    if (parsed.sealed.length < GCM_OVERHEAD + 1) throw new PkiKeyWrapError(`${slot}: the wrapped key is truncated`);
    try {
      return (await this.crypto.decrypt(this.key, parsed.sealed, aadFor(this.keyId, slot))).toString('utf8');
    } catch {
      throw new PkiKeyWrapError(`${slot}: the wrapped key failed authentication: it was altered, moved from another slot, or wrapped under another key`);
    }
  }
}

function aadFor(keyId: string, slot: string): Buffer {
  return Buffer.from(`k8sd-pki/v1/${keyId}/${slot}`, 'utf8');
}

function parseWrapped(value: string): { keyId: string; sealed: Buffer } | undefined {
  if (!value.startsWith(WRAPPED_VALUE_PREFIX)) return undefined;
  const rest = value.slice(WRAPPED_VALUE_PREFIX.length);
  const colon = rest.indexOf(':');
  if (colon < 0) return undefined;
  return { keyId: rest.slice(0, colon), sealed: Buffer.from(rest.slice(colon + 1), 'base64') };
}

export function isWrapped(value: string): boolean {
  return parseWrapped(value) !== undefined;
}

/** The wrapping key id a stored value names, if it is wrapped. */
export function wrappedKeyId(value: string): string | undefined {
  return parseWrapped(value)?.keyId;
}

/** Where the wrapping key is kept and who may see it: control-plane nodes only, 0600 under a 0700 directory. */
export class PkiWrappingKeyFile {
  private cached?: { stamp: string; wrapper: PkiKeyWrapper };

  constructor(readonly file: string, private readonly crypto: () => CryptoBackend) {}

  exists(): boolean {
    return existsSync(this.file);
  }

  /** The wrapper from the file; a typed error naming the file when it is missing or damaged. */
  async wrapper(): Promise<PkiKeyWrapper> {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      throw new PkiKeyWrapError(
        `the PKI wrapping key ${this.file} is missing: CA keys in the datastore cannot be read or written on this node; ` +
          'copy the file (mode 0600) from another control-plane node, or re-join this node',
      );
    }
    if (this.cached?.stamp === stamp) return this.cached.wrapper;
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(this.file, 'utf8'));
    } catch (err) {
      throw new PkiKeyWrapError(`the PKI wrapping key ${this.file} cannot be read (${(err as Error).message}); copy it from another control-plane node`);
    }
    const wrapper = await PkiKeyWrapper.fromDocument(this.crypto(), raw, this.file);
    this.cached = { stamp, wrapper };
    return wrapper;
  }

  /** Writes a wrapping key (bootstrap: a new one; join: the cluster's). */
  install(doc: PkiWrappingKeyDocument): void {
    mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    writeFileAtomic(this.file, `${JSON.stringify(doc)}\n`, 0o600);
    this.cached = undefined;
  }

  /** The wrapper from the file, or a new key written to it when there is none (bootstrap, migration). */
  async ensure(): Promise<PkiKeyWrapper> {
    if (this.exists()) return this.wrapper();
    const created = await PkiKeyWrapper.generate(this.crypto());
    this.install(created.document);
    return this.wrapper();
  }

  remove(): void {
    rmSync(this.file, { force: true });
    this.cached = undefined;
  }
}

/** A CA set as stored: every present `key` is a wrapped value (or, in records from before wrapping, a PEM). */
export type StoredCaSet = Record<string, CaMaterial>;

/** Wraps the key of every CA in a set (whatever CAs the PKI table has: no list of names here). */
export async function sealCaSet<T extends Record<string, CaMaterial>>(w: PkiKeyWrapper, slot: string, cas: T): Promise<T> {
  const out: Record<string, CaMaterial> = {};
  for (const [name, material] of Object.entries(cas)) {
    out[name] = material.key === undefined ? material : { ...material, key: await w.wrapPrivateKey(`${slot}/${name}`, material.key) };
  }
  return out as T;
}

/**
 * Unwraps the key of every CA in a stored set. A plaintext PEM (a record from before wrapping) is
 * returned as is, and reported through `legacy` so that the caller can rewrite the record wrapped.
 */
export async function openCaSet<T extends Record<string, CaMaterial>>(
  w: () => Promise<PkiKeyWrapper>,
  slot: string,
  stored: T,
  legacy: { found: boolean },
): Promise<T> {
  const out: Record<string, CaMaterial> = {};
  for (const [name, material] of Object.entries(stored)) {
    if (material.key === undefined) out[name] = material;
    else out[name] = { ...material, key: await openValue(w, `${slot}/${name}`, material.key, legacy) };
  }
  return out as T;
}

/** Unwraps one stored private key (see openCaSet for plaintext records). */
export async function openValue(w: () => Promise<PkiKeyWrapper>, slot: string, value: string, legacy: { found: boolean }): Promise<string> {
  if (isWrapped(value)) return (await w()).unwrapPrivateKey(slot, value);
  legacy.found = true;
  return value;
}
