import { describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import {
  decodeToken,
  describeToken,
  encodeToken,
  JoinToken,
  newSecret,
  secretMatches,
  TOKEN_PREFIX,
  TokenExpiredError,
  TokenFormatError,
} from '../../src/k8sd/membership/token.js';

const crypto = new NodeCryptoBackend();
const FP = 'ab'.repeat(32);

async function sample(overrides: Partial<JoinToken> = {}): Promise<{ token: JoinToken; text: string; hash: string }> {
  const { secret, secretHash } = await newSecret(crypto);
  const token: JoinToken = {
    name: 'cp2',
    role: 'control-plane',
    bound: true,
    secret,
    endpoints: [{ address: '10.0.0.5:6400', fingerprint: FP }, { address: '[fd00::6]:6400', fingerprint: 'cd'.repeat(32) }],
    expiresAt: new Date(Date.now() + 3600_000),
    ...overrides,
  };
  return { token, text: await encodeToken(crypto, token), hash: secretHash };
}

function editPayload(text: string, edit: (p: Record<string, unknown>) => void): string {
  const [body, mac] = text.slice(TOKEN_PREFIX.length).split('.');
  const payload = JSON.parse(Buffer.from(body!, 'base64url').toString()) as Record<string, unknown>;
  edit(payload);
  return `${TOKEN_PREFIX}${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${mac}`;
}

async function rejection(text: string): Promise<Error> {
  try {
    await decodeToken(crypto, text);
  } catch (err) {
    return err as Error;
  }
  throw new Error('the token was accepted');
}

describe('join tokens', () => {
  it('round-trips name, role, binding, secret, endpoints and expiry', async () => {
    const { token, text } = await sample();
    expect(text.startsWith(TOKEN_PREFIX)).toBe(true);
    const back = await decodeToken(crypto, `  ${text}\n`);
    expect(back.name).toBe('cp2');
    expect(back.role).toBe('control-plane');
    expect(back.bound).toBe(true);
    expect(back.secret).toBe(token.secret);
    expect(back.endpoints).toEqual(token.endpoints);
    expect(Math.abs(back.expiresAt.getTime() - token.expiresAt.getTime())).toBeLessThan(1000);
  });

  it('round-trips an unbound worker token', async () => {
    const { text } = await sample({ name: 'worker-1a2b3c4d', role: 'worker', bound: false });
    const back = await decodeToken(crypto, text);
    expect(back.role).toBe('worker');
    expect(back.bound).toBe(false);
  });

  it('detects an edited endpoint (a token redirected elsewhere) by its checksum', async () => {
    const { text } = await sample();
    const edited = editPayload(text, (p) => ((p.e as string[][])[0]![0] = '10.9.9.9:6400'));
    const err = await rejection(edited);
    expect(err).toBeInstanceOf(TokenFormatError);
    expect(err.message).toMatch(/checksum does not match/);
  });

  it('detects an edited fingerprint, role or expiry', async () => {
    const { text } = await sample();
    for (const edit of [
      (p: Record<string, unknown>) => ((p.e as string[][])[0]![1] = 'ef'.repeat(32)),
      (p: Record<string, unknown>) => (p.r = 'w'),
      (p: Record<string, unknown>) => (p.x = (p.x as number) + 86_400),
      (p: Record<string, unknown>) => (p.n = 'cp3'),
    ]) {
      expect(await rejection(editPayload(text, edit))).toBeInstanceOf(TokenFormatError);
    }
  });

  it('detects a flipped character anywhere', async () => {
    const { text } = await sample();
    for (const i of [TOKEN_PREFIX.length + 3, Math.floor(text.length / 2), text.length - 2]) {
      const c = text[i] === 'A' ? 'B' : 'A';
      const flipped = text.slice(0, i) + c + text.slice(i + 1);
      expect(await rejection(flipped)).toBeInstanceOf(TokenFormatError);
    }
  });

  it('explains a truncated token and a foreign string', async () => {
    const { text } = await sample();
    expect((await rejection(text.slice(0, 40))).message).toMatch(/truncated|cannot be read|checksum|not what k8s issues/);
    expect((await rejection('K10abc::node:secret')).message).toMatch(/does not start with "k8sj1_"/);
  });

  it('rejects an expired token with the expiry time, unless expiry checking is off', async () => {
    const { text } = await sample({ expiresAt: new Date(Date.now() - 1000) });
    const err = await rejection(text);
    expect(err).toBeInstanceOf(TokenExpiredError);
    expect(err.message).toMatch(/expired at \d{4}-/);
    expect((await decodeToken(crypto, text, null)).name).toBe('cp2');
  });

  it('stores only a hash of the secret and compares it', async () => {
    const { token, hash } = await sample();
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).not.toContain(token.secret);
    expect(await secretMatches(crypto, token.secret, hash)).toBe(true);
    const other = await newSecret(crypto);
    expect(await secretMatches(crypto, other.secret, hash)).toBe(false);
    expect(await secretMatches(crypto, token.secret, '00')).toBe(false);
  });

  it('describes a token without its secret', async () => {
    const { token } = await sample();
    const d = describeToken(token);
    expect(JSON.stringify(d)).not.toContain(token.secret);
    expect(d.endpoints).toEqual(['10.0.0.5:6400', '[fd00::6]:6400']);
  });
});
