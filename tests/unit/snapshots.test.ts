// Snapshot sealing, the snapshot key, the schedule settings, and inspect's redaction.
import { mkdtemp, rm } from 'node:fs/promises';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { SnapshotKey, SnapshotKeyError, SnapshotKeyStore } from '../../src/snapshots/key.js';
import { openSnapshot, sealSnapshot, SnapshotFormatError, SnapshotIntegrityError, SnapshotManifest } from '../../src/snapshots/format.js';
import { applySnapshotChanges, DEFAULT_SNAPSHOT_SETTINGS, nextRun, parseSchedule, SnapshotConfigError } from '../../src/snapshots/schedule.js';
import { redact } from '../../src/inspect/redact.js';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';

const crypto = new NodeCryptoBackend();

function manifest(dbBytes: number): SnapshotManifest {
  return { name: 't', createdAt: '2026-01-01T00:00:00Z', node: 'n1', etcdVersion: 'v3.6.0', revision: 7, totalKeys: 3, dbBytes, secretsEncryption: 'none' };
}

describe('snapshot file', () => {
  let dir: string;
  let key: SnapshotKey;
  let db: Buffer;
  let sealed: Buffer;

  /** Opens `bytes` as a snapshot file; returns the manifest and the database written out. */
  async function open(bytes: Buffer, withKey = key, name = 'f.k8s-snapshot'): Promise<{ manifest: SnapshotManifest; db: Buffer }> {
    const file = path.join(dir, name);
    writeFileSync(file, bytes);
    const outFile = path.join(dir, `${name}.db`);
    const out = openSync(outFile, 'w');
    try {
      return { manifest: await openSnapshot(crypto, withKey, file, out), db: readFileSync(outFile) };
    } finally {
      closeSync(out);
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'snapfile-'));
    key = await SnapshotKey.generate(crypto);
    // Larger than two 4 MiB chunks, with a recognisable plaintext.
    db = Buffer.concat([Buffer.from('top-secret-value-42 '), Buffer.alloc(9 * 1024 * 1024, 'x')]);
    const dbFile = path.join(dir, 'db');
    writeFileSync(dbFile, db);
    const sealedFile = path.join(dir, 'sealed');
    const fd = openSync(sealedFile, 'w');
    const written = await sealSnapshot(crypto, key, manifest(db.length), dbFile, fd);
    closeSync(fd);
    sealed = readFileSync(sealedFile);
    expect(written).toBe(sealed.length);
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('round-trips and holds no plaintext', async () => {
    const out = await open(sealed);
    expect(out.db.equals(db)).toBe(true);
    expect(out.manifest.revision).toBe(7);
    expect(sealed.includes(Buffer.from('top-secret-value-42'))).toBe(false);
    expect(sealed.includes(Buffer.from('"node"'))).toBe(false);
  });

  it('refuses a flipped byte anywhere, a truncation, an appended byte and a dropped chunk', async () => {
    for (const at of [20, 200, Math.floor(sealed.length / 2), sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] = bad[at]! ^ 1;
      await expect(open(bad)).rejects.toBeInstanceOf(SnapshotFormatError);
    }
    await expect(open(sealed.subarray(0, sealed.length - 100))).rejects.toBeInstanceOf(SnapshotIntegrityError);
    await expect(open(Buffer.concat([sealed, Buffer.from([0])]))).rejects.toBeInstanceOf(SnapshotIntegrityError);
    // Drop the last database chunk whole (its frame is 4 + plaintext + 28 bytes): the chunk that is
    // now last was not sealed as the last one.
    const lastFrame = 4 + (db.length - 2 * 4 * 1024 * 1024) + 28;
    await expect(open(sealed.subarray(0, sealed.length - lastFrame))).rejects.toThrow(/chunk 2 failed authentication/);
  });

  it('refuses a snapshot of another cluster by key id, naming both keys', async () => {
    const other = await SnapshotKey.generate(crypto);
    await expect(open(sealed, other)).rejects.toThrow(new RegExp(`${key.id}.*${other.id}`));
  });

  it('refuses garbage with a clear message', async () => {
    await expect(open(Buffer.from('hello world'), key, 'junk.bin')).rejects.toThrow(/junk.bin: is not a k8s snapshot/);
  });
});

describe('snapshot key store', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'snapkey-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('creates a 0600 key once and reloads the same one', async () => {
    const store = new SnapshotKeyStore(crypto, path.join(dir, 'state', 'snapshot-key.json'));
    const a = await store.ensure();
    const b = await store.ensure();
    expect(a.id).toBe(b.id);
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
  });

  it('refuses an altered key document', async () => {
    const k = await SnapshotKey.generate(crypto);
    const doc = { ...k.document, id: 'snapkey-0000000000000000' };
    await expect(SnapshotKey.fromDocument(crypto, doc, 'doc')).rejects.toBeInstanceOf(SnapshotKeyError);
  });

  it('derives a different file key per salt', async () => {
    const k = await SnapshotKey.generate(crypto);
    expect((await k.fileKey(Buffer.alloc(32, 1))).equals(await k.fileKey(Buffer.alloc(32, 2)))).toBe(false);
  });
});

describe('etcd-snapshot settings', () => {
  it('accepts cron, descriptors, @every and off', () => {
    expect(applySnapshotChanges(DEFAULT_SNAPSHOT_SETTINGS, { 'etcd-snapshot.schedule': '*/5 1-3 * * 1,3', 'etcd-snapshot.retention': '3' })).toEqual({ schedule: '*/5 1-3 * * 1,3', retention: 3 });
    expect(applySnapshotChanges(DEFAULT_SNAPSHOT_SETTINGS, { 'etcd-snapshot.schedule': 'off' }).schedule).toBe('');
    expect(parseSchedule('@every 20s')).toEqual({ kind: 'every', ms: 20_000 });
  });

  it('names the key in every refusal', () => {
    const bad: Array<[string, unknown, RegExp]> = [
      ['etcd-snapshot.schedule', '61 * * * *', /etcd-snapshot.schedule: "61" is out of range for minute/],
      ['etcd-snapshot.schedule', 'every day', /etcd-snapshot.schedule: .*5 \(minute/],
      ['etcd-snapshot.schedule', '@every 1s', /etcd-snapshot.schedule: .*too frequent/],
      ['etcd-snapshot.schedule', '0 0 30 2 *', /never fires/],
      ['etcd-snapshot.retention', '0', /etcd-snapshot.retention: "0" is not a whole number/],
      ['etcd-snapshot.retention', 'five', /etcd-snapshot.retention/],
      ['etcd-snapshot.bogus', '1', /etcd-snapshot.bogus: unknown key/],
    ];
    for (const [k, v, re] of bad) {
      expect(() => applySnapshotChanges(DEFAULT_SNAPSHOT_SETTINGS, { [k]: v }), `${k}=${String(v)}`).toThrow(SnapshotConfigError);
      expect(() => applySnapshotChanges(DEFAULT_SNAPSHOT_SETTINGS, { [k]: v })).toThrow(re);
    }
  });

  it('computes the next run in UTC', () => {
    const at = new Date('2026-03-04T05:06:07Z');
    expect(nextRun(parseSchedule('0 */12 * * *'), at)?.toISOString()).toBe('2026-03-04T12:00:00.000Z');
    expect(nextRun(parseSchedule('30 2 * * 0'), at)?.toISOString()).toBe('2026-03-08T02:30:00.000Z');
    expect(nextRun(parseSchedule('@every 90s'), at)?.toISOString()).toBe('2026-03-04T05:07:37.000Z');
    expect(nextRun(parseSchedule(''), at)).toBeUndefined();
  });
});

describe('inspect redaction', () => {
  it('scrubs private keys, tokens and credential fields', () => {
    const text = [
      '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\n-----END EC PRIVATE KEY-----',
      'client-key-data: LS0tLS1CRUdJTg==',
      '    token: abcdef.0123456789abcdef',
      'joined with k8sj1_eyJhYmMiOjF9.xyz',
      'Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
      '--token-auth-file=/x --service-account-key-file=/etc/kubernetes/pki/sa.pub',
    ].join('\n');
    const out = redact(text);
    expect(out).not.toMatch(/MHcCAQEEIA|LS0tLS1CRUdJTg|0123456789abcdef|eyJhYmMiOjF9|c2ln/);
    expect(out).toContain('--service-account-key-file=/etc/kubernetes/pki/sa.pub');
  });
});

describe('bootstrap etcd-snapshot settings', () => {
  it('defaults to k3s\'s schedule and takes the file\'s values', () => {
    expect(parseBootstrapYaml('').etcdSnapshot).toEqual({ schedule: '0 */12 * * *', retention: 5 });
    expect(parseBootstrapYaml('etcd-snapshot: {schedule: "@daily", retention: 7}').etcdSnapshot).toEqual({ schedule: '@daily', retention: 7 });
  });

  it('names the key of a bad value', () => {
    expect(() => parseBootstrapYaml('etcd-snapshot: {schedule: "bad"}')).toThrow(ConfigError);
    expect(() => parseBootstrapYaml('etcd-snapshot: {schedule: "bad"}')).toThrow(/etcd-snapshot.schedule/);
    expect(() => parseBootstrapYaml('etcd-snapshot: {retention: 0}')).toThrow(/etcd-snapshot.retention/);
    expect(() => parseBootstrapYaml('etcd-snapshot: {keep: 3}')).toThrow(/etcd-snapshot.keep: unknown key/);
  });
});
