// A 256-bit key that lives only on control-plane nodes (never in etcd), as a small JSON document in a
// 0600 file: the PKI wrapping key (src/pki/key-wrap.ts) and the snapshot key (src/snapshots/key.ts).
// The id is a domain-separated digest of the key, so a document that was altered is refused, and the
// id printed in logs and headers is never a plain hash of the key.
import type { CryptoBackend } from '../crypto/types.js';

const KEY_BYTES = 32;

/** As stored on a control-plane node. `secret` is base64 key material: never log it. */
export interface ControlPlaneKeyDocument<F extends string = string> {
  format: F;
  id: string;
  createdAt: string;
  secret: string;
}

/** One kind of control-plane key: its document format, id prefix and id label, and its error type. */
export interface ControlPlaneKeyKind<F extends string> {
  format: F;
  idPrefix: string;
  idLabel: string;
  error: (message: string) => Error;
}

export interface ControlPlaneKey<F extends string> {
  document: ControlPlaneKeyDocument<F>;
  key: Buffer;
}

async function keyIdFor(crypto: CryptoBackend, kind: ControlPlaneKeyKind<string>, key: Buffer): Promise<string> {
  const digest = await crypto.sha256(Buffer.concat([Buffer.from(`${kind.idLabel}\0`, 'utf8'), key]));
  return `${kind.idPrefix}-${digest.subarray(0, 8).toString('hex')}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function generateControlPlaneKey<F extends string>(crypto: CryptoBackend, kind: ControlPlaneKeyKind<F>, now = new Date()): Promise<ControlPlaneKey<F>> {
  const key = await crypto.randomBytes(KEY_BYTES);
  if (key.length !== KEY_BYTES) throw kind.error(`the crypto backend returned ${key.length} random bytes, wanted ${KEY_BYTES}`);
  return { key, document: { format: kind.format, id: await keyIdFor(crypto, kind, key), createdAt: now.toISOString(), secret: key.toString('base64') } };
}

/** Validates a key document (from its file or a join reply); `source` names it in errors. */
export async function parseControlPlaneKey<F extends string>(crypto: CryptoBackend, kind: ControlPlaneKeyKind<F>, raw: unknown, source: string): Promise<ControlPlaneKey<F>> {
  if (!isRecord(raw) || raw.format !== kind.format || typeof raw.id !== 'string' || typeof raw.secret !== 'string' || typeof raw.createdAt !== 'string') {
    throw kind.error(`${source} is not a "${kind.format}" document with id, createdAt and secret; copy it from another control-plane node`);
  }
  const key = Buffer.from(raw.secret, 'base64');
  const idPattern = new RegExp(`^${kind.idPrefix}-[0-9a-f]{16}$`);
  if (key.length !== KEY_BYTES || key.toString('base64') !== raw.secret || !idPattern.test(raw.id)) {
    throw kind.error(`${source}: the key is not ${KEY_BYTES} bytes of base64 or its id is malformed; copy the file from another control-plane node`);
  }
  if ((await keyIdFor(crypto, kind, key)) !== raw.id) {
    throw kind.error(`${source}: key ${raw.id} does not match its fingerprint; the file was altered — copy it from another control-plane node`);
  }
  return { key, document: { format: kind.format, id: raw.id, createdAt: raw.createdAt, secret: raw.secret } };
}
