// Join tokens. A token is self-describing so that a joining node can check it before
// it contacts anything:
//   k8sj1_<base64url(JSON payload)>.<base64url(HMAC-SHA256(secret, payload)[0..16])>
// The payload names the token, its role and expiry, carries a random secret, and lists the
// control-plane nodes to contact (ip:6400) each with the SHA-256 fingerprint of its k8sd
// cluster certificate, which the joiner pins before it sends the secret.
//
// The HMAC is keyed with the token's own secret: it detects a damaged or edited token
// locally (a truncated copy, a changed address or fingerprint), with a clear message. It is
// not a signature: whoever holds the whole token can re-compute it, but such a holder may
// join anyway. The cluster stores only SHA-256(secret) and decides by that, its own
// record of role and expiry, and a compare-and-delete that makes every token single-use.
import { CryptoBackend } from '../../crypto/types.js';

export const TOKEN_PREFIX = 'k8sj1_';
const MAC_DOMAIN = 'k8s-join-token/v1\n';
const MAC_BYTES = 16;
export const SECRET_BYTES = 32;

export type JoinRole = 'control-plane' | 'worker';

/** A control-plane node to contact for the join, and the fingerprint its cluster certificate must have. */
export interface JoinEndpoint {
  /** host:port of the node's cluster API (port 6400). */
  address: string;
  /** Lower-case hex SHA-256 of the DER of the node's k8sd cluster certificate. */
  fingerprint: string;
}

export interface JoinToken {
  /** Name of the token: the node name it is bound to, or a generated name for an unbound worker token. */
  name: string;
  role: JoinRole;
  /** True when only a node of this name may use the token. */
  bound: boolean;
  /** base64url of SECRET_BYTES random bytes. Never log it. */
  secret: string;
  endpoints: JoinEndpoint[];
  expiresAt: Date;
}

/** The token text is not a join token, or was damaged or edited since it was issued. */
export class TokenFormatError extends Error {
  constructor(reason: string) {
    super(`invalid join token: ${reason}`);
    this.name = 'TokenFormatError';
  }
}

export class TokenExpiredError extends Error {
  constructor(readonly tokenName: string, readonly expiresAt: Date) {
    super(`the join token "${tokenName}" expired at ${expiresAt.toISOString()}; ask a control-plane node for a new one with "k8s get-join-token"`);
    this.name = 'TokenExpiredError';
  }
}

interface WirePayload {
  v: 1;
  n: string;
  r: 'c' | 'w';
  b: 0 | 1;
  s: string;
  e: Array<[string, string]>;
  x: number;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Constant-time comparison (a comparison, not cryptography: no backend needed). */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** A fresh random secret and the SHA-256 hex that the cluster stores in its place. */
export async function newSecret(crypto: CryptoBackend): Promise<{ secret: string; secretHash: string }> {
  const secret = b64url(await crypto.randomBytes(SECRET_BYTES));
  return { secret, secretHash: await secretHash(crypto, secret) };
}

export async function secretHash(crypto: CryptoBackend, secret: string): Promise<string> {
  return (await crypto.sha256(`k8s-join-secret/v1\n${secret}`)).toString('hex');
}

/** Compares a presented secret with a stored hash in constant time. */
export async function secretMatches(crypto: CryptoBackend, secret: string, storedHash: string): Promise<boolean> {
  const a = Buffer.from(await secretHash(crypto, secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return constantTimeEqual(a, b);
}

async function mac(crypto: CryptoBackend, secret: string, body: string): Promise<Buffer> {
  return (await crypto.hmacSha256(Buffer.from(secret, 'base64url'), MAC_DOMAIN + body)).subarray(0, MAC_BYTES);
}

export async function encodeToken(crypto: CryptoBackend, t: JoinToken): Promise<string> {
  const wire: WirePayload = {
    v: 1,
    n: t.name,
    r: t.role === 'control-plane' ? 'c' : 'w',
    b: t.bound ? 1 : 0,
    s: t.secret,
    e: t.endpoints.map((e) => [e.address, e.fingerprint]),
    x: Math.floor(t.expiresAt.getTime() / 1000),
  };
  const body = b64url(JSON.stringify(wire));
  return `${TOKEN_PREFIX}${body}.${b64url(await mac(crypto, t.secret, body))}`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HOSTPORT = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/;

/**
 * Decodes and checks a token locally: format, checksum and (unless `now` is null) expiry.
 * Throws TokenFormatError or TokenExpiredError with a message for the user.
 */
export async function decodeToken(crypto: CryptoBackend, text: string, now: Date | null = new Date()): Promise<JoinToken> {
  const token = text.trim();
  if (!token.startsWith(TOKEN_PREFIX)) {
    throw new TokenFormatError(`it does not start with "${TOKEN_PREFIX}"; copy the whole output of "k8s get-join-token"`);
  }
  const rest = token.slice(TOKEN_PREFIX.length);
  const dot = rest.lastIndexOf('.');
  if (dot < 0 || !/^[A-Za-z0-9_-]+$/.test(rest.slice(0, dot)) || !/^[A-Za-z0-9_-]+$/.test(rest.slice(dot + 1))) {
    throw new TokenFormatError('it is truncated or contains characters a token never has; copy it again');
  }
  const body = rest.slice(0, dot);
  let wire: WirePayload;
  try {
    wire = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as WirePayload;
  } catch {
    throw new TokenFormatError('its content cannot be read; it was damaged or edited, copy it again');
  }
  const wellFormed =
    wire !== null &&
    typeof wire === 'object' &&
    wire.v === 1 &&
    typeof wire.n === 'string' &&
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(wire.n) &&
    (wire.r === 'c' || wire.r === 'w') &&
    (wire.b === 0 || wire.b === 1) &&
    typeof wire.s === 'string' &&
    Buffer.from(wire.s, 'base64url').length === SECRET_BYTES &&
    Array.isArray(wire.e) &&
    wire.e.length > 0 &&
    wire.e.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && HOSTPORT.test(e[0]) && typeof e[1] === 'string' && HEX64.test(e[1])) &&
    Number.isInteger(wire.x);
  if (!wellFormed) throw new TokenFormatError('its content is not what k8s issues; it was damaged or edited, copy it again');
  const expected = await mac(crypto, wire.s, body);
  const given = Buffer.from(rest.slice(dot + 1), 'base64url');
  if (!constantTimeEqual(given, expected)) {
    throw new TokenFormatError('its checksum does not match: the token was damaged or edited after it was issued; copy it again from "k8s get-join-token"');
  }
  const t: JoinToken = {
    name: wire.n,
    role: wire.r === 'c' ? 'control-plane' : 'worker',
    bound: wire.b === 1,
    secret: wire.s,
    endpoints: wire.e.map(([address, fingerprint]) => ({ address, fingerprint })),
    expiresAt: new Date(wire.x * 1000),
  };
  if (now && t.expiresAt.getTime() <= now.getTime()) throw new TokenExpiredError(t.name, t.expiresAt);
  return t;
}

/** What a token says, without its secret: safe to print or log. */
export function describeToken(t: JoinToken): { name: string; role: JoinRole; bound: boolean; endpoints: string[]; expiresAt: string } {
  return { name: t.name, role: t.role, bound: t.bound, endpoints: t.endpoints.map((e) => e.address), expiresAt: t.expiresAt.toISOString() };
}
