// The k8sd KMS v2 plugin, served for real on a unix socket and called with grpc-js.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { EncryptionKeyConflictError, KekRingError, KmsCallError, KmsSocketError } from '../../src/security/errors.js';
import { writeFileAtomic } from '../../src/host/files.js';
import { KekStore, MAX_WRAP_PLAINTEXT_BYTES, kmsPaths } from '../../src/security/kek-ring.js';
import { createKmsClient, startKmsServer, type KmsClient, type KmsServer } from '../../src/security/kms.js';
import type { SecurityLogger } from '../../src/security/logger.js';
import { securityTestCrypto } from './security-crypto-double.js';

const crypto = securityTestCrypto();

interface Logged { level: string; message: string; meta?: Record<string, unknown> }
function captureLogger(): { logger: SecurityLogger; lines: Logged[] } {
  const lines: Logged[] = [];
  const push = (level: string) => (message: string, meta?: Record<string, unknown>) => { lines.push({ level, message, meta }); };
  return { logger: { info: push('info'), warn: push('warn'), error: push('error') }, lines };
}

async function grpcCodeOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof KmsCallError) return error.grpcCode;
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('KMS v2 plugin over a unix socket', () => {
  let root: string;
  let layout: Layout;
  let store: KekStore;
  let server: KmsServer;
  let client: KmsClient;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(async () => {
    // Short path: unix socket paths are limited to 107 bytes.
    root = await mkdtemp(path.join(tmpdir(), 'k8s-kms-'));
    layout = new Layout({ K8S_ROOT: root });
    log = captureLogger();
    store = await KekStore.open({ file: kmsPaths(layout).ringFile, crypto, logger: log.logger });
    server = await startKmsServer({ socketPath: kmsPaths(layout).socket, store, logger: log.logger });
    client = createKmsClient(kmsPaths(layout).socket);
  });

  afterEach(async () => {
    client.close();
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('reports healthz ok, version v2 and the current KEK id', async () => {
    const status = await client.status();
    expect(status).toEqual({ version: 'v2', healthz: 'ok', keyId: store.currentKeyId });
    expect(status.keyId).toMatch(/^kek-1-[0-9a-f]{16}$/);
  });

  it('round-trips a DEK through Encrypt and Decrypt, with a ciphertext under 1 kB', async () => {
    const dek = await crypto.randomBytes(32);
    const wrapped = await client.encrypt(dek, 'uid-1');
    expect(wrapped.keyId).toBe(store.currentKeyId);
    expect(wrapped.ciphertext.length).toBeLessThan(1024);
    expect(wrapped.ciphertext.includes(dek)).toBe(false);
    const plaintext = await client.decrypt({ ciphertext: wrapped.ciphertext, keyId: wrapped.keyId, uid: 'uid-2', annotations: wrapped.annotations });
    expect(plaintext.equals(dek)).toBe(true);
  });

  it('changes key_id after rotate and still decrypts what the old KEK wrapped', async () => {
    const dek = await crypto.randomBytes(32);
    const before = await client.encrypt(dek);
    const rotated = await store.rotate();
    expect(rotated.id).toMatch(/^kek-2-[0-9a-f]{16}$/);
    expect(rotated.id).not.toBe(before.keyId);
    expect((await client.status()).keyId).toBe(rotated.id);

    const after = await client.encrypt(dek);
    expect(after.keyId).toBe(rotated.id);
    expect((await client.decrypt({ ciphertext: before.ciphertext, keyId: before.keyId })).equals(dek)).toBe(true);
    expect((await client.decrypt({ ciphertext: after.ciphertext, keyId: after.keyId })).equals(dek)).toBe(true);
    expect(store.list().map((k) => [k.generation, k.current])).toEqual([[1, false], [2, true]]);
  });

  it('rejects a tampered ciphertext with INVALID_ARGUMENT', async () => {
    const wrapped = await client.encrypt(await crypto.randomBytes(32));
    const tampered = Buffer.from(wrapped.ciphertext);
    tampered[tampered.length - 20]! ^= 0x01;
    expect(await grpcCodeOf(client.decrypt({ ciphertext: tampered, keyId: wrapped.keyId }))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await grpcCodeOf(client.decrypt({ ciphertext: wrapped.ciphertext.subarray(0, 20), keyId: wrapped.keyId }))).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('rejects a ciphertext presented under another KEK id, and unknown key ids with NOT_FOUND', async () => {
    const wrapped = await client.encrypt(await crypto.randomBytes(32));
    const second = await store.rotate();
    expect(await grpcCodeOf(client.decrypt({ ciphertext: wrapped.ciphertext, keyId: second.id }))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await grpcCodeOf(client.decrypt({ ciphertext: wrapped.ciphertext, keyId: 'kek-9-0000000000000000' }))).toBe(grpc.status.NOT_FOUND);
  });

  it('refuses empty and oversized plaintexts', async () => {
    expect(await grpcCodeOf(client.encrypt(Buffer.alloc(0)))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await grpcCodeOf(client.encrypt(Buffer.alloc(MAX_WRAP_PLAINTEXT_BYTES + 1)))).toBe(grpc.status.INVALID_ARGUMENT);
    const largest = await client.encrypt(Buffer.alloc(MAX_WRAP_PLAINTEXT_BYTES, 7));
    expect(largest.ciphertext.length).toBeLessThan(1024);
  });

  it('keeps the KEK ring 0600 in a 0700 directory, and the socket 0600 in a 0700 directory', async () => {
    const paths = kmsPaths(layout);
    expect((await stat(paths.ringFile)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(paths.socket)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.socketDir)).mode & 0o777).toBe(0o700);
    await store.rotate();
    expect((await stat(paths.ringFile)).mode & 0o777).toBe(0o600);
  });

  it('persists KEKs: a store reopened from the file decrypts what the server wrapped', async () => {
    const dek = await crypto.randomBytes(32);
    const wrapped = await client.encrypt(dek);
    await store.rotate();
    const reopened = await KekStore.open({ file: kmsPaths(layout).ringFile, crypto, create: false });
    expect(reopened.currentKeyId).toBe(store.currentKeyId);
    expect((await reopened.unwrap(wrapped.ciphertext, wrapped.keyId)).equals(dek)).toBe(true);
  });

  it('never logs key material or plaintext', async () => {
    const dek = await crypto.randomBytes(32);
    const wrapped = await client.encrypt(dek);
    await client.decrypt({ ciphertext: wrapped.ciphertext, keyId: wrapped.keyId });
    await store.rotate();
    const ring = await readFile(kmsPaths(layout).ringFile, 'utf8');
    const secrets = (JSON.parse(ring) as { keys: Array<{ secret: string }> }).keys.map((k) => k.secret);
    const logged = JSON.stringify(log.lines);
    expect(log.lines.length).toBeGreaterThan(0);
    for (const secret of [...secrets, dek.toString('base64'), dek.toString('hex'), wrapped.ciphertext.toString('base64')]) {
      expect(logged).not.toContain(secret);
    }
  });

  it('tells when the apiserver has adopted a rotated KEK (its next Encrypt uses it)', async () => {
    const rotated = await store.rotate();
    const adopted = server.waitForKeyAdoption(rotated.id, 5_000);
    await client.encrypt(await crypto.randomBytes(32));
    await expect(adopted).resolves.toBeUndefined();
    expect(server.lastEncrypt()?.keyId).toBe(rotated.id);
    await expect(server.waitForKeyAdoption('kek-99-0000000000000000', 50)).rejects.toThrow(/has not wrapped a DEK/);
  });

  it('picks up a ring another writer synced to disk (Status and Decrypt reload it)', async () => {
    const otherRoot = await mkdtemp(path.join(tmpdir(), 'k8s-kms-peer-'));
    try {
      const peer = await KekStore.open({ file: path.join(otherRoot, 'ring.json'), crypto, seed: store.exportRing() });
      await peer.rotate();
      const dek = await crypto.randomBytes(32);
      const fromPeer = await peer.wrap(dek);
      await writeFileAtomic(kmsPaths(layout).ringFile, JSON.stringify(peer.exportRing()), 0o600);
      expect((await client.decrypt({ ciphertext: fromPeer.ciphertext, keyId: fromPeer.keyId })).equals(dek)).toBe(true);
      expect((await client.status()).keyId).toBe(peer.currentKeyId);
    } finally {
      await rm(otherRoot, { recursive: true, force: true });
    }
  });

  it('refuses to take over a socket another plugin is serving', async () => {
    await expect(startKmsServer({ socketPath: kmsPaths(layout).socket, store })).rejects.toBeInstanceOf(KmsSocketError);
  });
});

describe('KEK ring', () => {
  let root: string;
  beforeEach(async () => { root = await mkdtemp(path.join(tmpdir(), 'k8s-kek-')); });
  afterEach(async () => { await rm(root, { recursive: true, force: true }); });

  it('makes a joining node fail loudly without a ring, instead of inventing its own KEK', async () => {
    const missing = await KekStore.open({ file: path.join(root, 'b', 'ring.json'), crypto, create: false }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(KekRingError);
    expect(String(missing)).toMatch(/copy the ring from another control-plane node/);
  });

  it('refuses to merge a ring from a node that bootstrapped its own KEK', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    const stray = await KekStore.open({ file: path.join(root, 'b', 'ring.json'), crypto });
    await expect(stray.adopt(a.exportRing())).rejects.toBeInstanceOf(EncryptionKeyConflictError);
  });

  it('merges rings from two nodes so both decrypt everything and agree on the current KEK', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    const copy = await KekStore.open({ file: path.join(root, 'c', 'ring.json'), crypto, create: false, seed: a.exportRing() });
    expect((await stat(path.join(root, 'c', 'ring.json'))).mode & 0o777).toBe(0o600);
    await a.rotate();
    const wrapped = await a.wrap(Buffer.from('dek-bytes'));
    const merged = await copy.adopt(a.exportRing());
    expect(copy.currentKeyId).toBe(a.currentKeyId);
    expect(merged.map((k) => k.id)).toEqual(a.list().map((k) => k.id));
    expect((await copy.unwrap(wrapped.ciphertext, wrapped.keyId)).toString()).toBe('dek-bytes');
  });

  it('refuses concurrent rotations on two nodes (same generation, different keys)', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    await writeFileAtomic(path.join(root, 'b', 'ring.json'), JSON.stringify(a.exportRing()), 0o600);
    const b = await KekStore.open({ file: path.join(root, 'b', 'ring.json'), crypto, create: false });
    await a.rotate();
    await b.rotate();
    await expect(a.adopt(b.exportRing())).rejects.toThrow(/rotated at the same time/);
  });

  it('rejects a ring whose key does not match its id fingerprint', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    const ring = a.exportRing();
    ring.keys[0]!.secret = (await crypto.randomBytes(32)).toString('base64');
    await writeFile(path.join(root, 'bad.json'), JSON.stringify(ring), { mode: 0o600 });
    await expect(KekStore.open({ file: path.join(root, 'bad.json'), crypto })).rejects.toThrow(/does not match its fingerprint/);
  });

  it('rejects malformed rings with a message naming the problem', async () => {
    const file = path.join(root, 'broken.json');
    await writeFile(file, '{not json', { mode: 0o600 });
    await expect(KekStore.open({ file, crypto })).rejects.toThrow(/not valid JSON/);
    await writeFile(file, JSON.stringify({ format: 'k8sd-kms-kek-ring/v1', current: 'x', keys: [] }), { mode: 0o600 });
    await expect(KekStore.open({ file, crypto })).rejects.toThrow(/non-empty "keys"/);
  });

  it('tightens a ring file that became group/world readable', async () => {
    const file = path.join(root, 'a', 'ring.json');
    await KekStore.open({ file, crypto });
    await chmod(file, 0o644);
    await KekStore.open({ file, crypto });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('retires old KEKs but never the current one', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    const first = a.currentKeyId;
    await a.rotate();
    await expect(a.retire(a.currentKeyId)).rejects.toThrow(/is the current KEK/);
    await a.retire(first);
    expect(a.list().map((k) => k.generation)).toEqual([2]);
    expect(a.has(first)).toBe(false);
  });
});

// Wire compatibility with the upstream interface definition, when the Go module cache has it.
const upstreamProto = path.join(process.env.GOMODCACHE ?? path.join(process.env.GOPATH ?? path.join(homedir(), 'go'), 'pkg', 'mod'), 'k8s.io', 'kms@v0.37.2', 'apis', 'v2', 'api.proto');

describe.skipIf(!existsSync(upstreamProto))('wire compatibility with upstream k8s.io/kms apis/v2', () => {
  it('serves a client built from the upstream api.proto', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'k8s-kms-up-'));
    const layout = new Layout({ K8S_ROOT: root });
    const store = await KekStore.open({ file: kmsPaths(layout).ringFile, crypto });
    const server = await startKmsServer({ socketPath: kmsPaths(layout).socket, store });
    const upstream = createKmsClient(kmsPaths(layout).socket, { protoFile: upstreamProto });
    try {
      expect(await upstream.status()).toEqual({ version: 'v2', healthz: 'ok', keyId: store.currentKeyId });
      const dek = await crypto.randomBytes(32);
      const wrapped = await upstream.encrypt(dek, 'uid');
      expect((await upstream.decrypt({ ciphertext: wrapped.ciphertext, keyId: wrapped.keyId, annotations: { 'example.k8s.io': Buffer.from('x') } })).equals(dek)).toBe(true);
    } finally {
      upstream.close();
      await server.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
