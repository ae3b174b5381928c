// Cluster-wide key rotation: the merge rules with staged keys, the rotation plan made from
// every control-plane node's keys, and two nodes' KMS plugins going through stage → activate.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/host/files.js';
import { Layout } from '../../src/layout.js';
import { aesgcmKeySet, aesgcmKeysOf, generateAesgcmKey } from '../../src/security/encryption.js';
import { EncryptionKeyConflictError } from '../../src/security/errors.js';
import { KekStore, generateKek, kekRingOf, kmsPaths } from '../../src/security/kek-ring.js';
import {
  activateKey,
  applyActivate,
  applyStage,
  discardStagedKey,
  mergeKeySets,
  planRotation,
  stageKey,
  stagedKeys,
  type KeySet,
  type VersionedKey,
} from '../../src/security/key-sets.js';
import { createKmsClient } from '../../src/security/kms.js';
import { SecurityManager, type ClusterSecurityConfig, type EncryptionKeys } from '../../src/security/manager.js';
import { securityTestCrypto } from './security-crypto-double.js';

const crypto = securityTestCrypto();

const key = (generation: number, tag = ''): VersionedKey => ({ id: `k${generation}${tag}`, generation, secret: `secret-${generation}${tag}` });
const set = (current: number, ...generations: number[]): KeySet<VersionedKey> => ({ current: `k${current}`, keys: generations.map((g) => key(g)) });
const ids = (s: KeySet<VersionedKey>): string[] => s.keys.map((k) => k.id);
const newKey = async (generation: number): Promise<VersionedKey> => key(generation, 'new');

describe('key sets with staged keys', () => {
  it('keeps a staged key staged when merged: the current key does not switch', () => {
    const staged = set(1, 1, 2); // k2 staged
    const plain = set(1, 1);
    for (const merged of [mergeKeySets(plain, staged), mergeKeySets(staged, plain)]) {
      expect(merged.current).toBe('k1');
      expect(ids(merged)).toEqual(['k1', 'k2']);
      expect(stagedKeys(merged).map((k) => k.id)).toEqual(['k2']);
    }
  });

  it('spreads an activation: the newer current key wins, whichever side it is on', () => {
    const activated = set(2, 1, 2);
    const behind = set(1, 1, 2);
    expect(mergeKeySets(behind, activated)).toEqual(mergeKeySets(activated, behind));
    expect(mergeKeySets(behind, activated).current).toBe('k2');
  });

  it('still refuses two different keys of one generation (concurrent rotations)', () => {
    const a: KeySet<VersionedKey> = { current: 'k1', keys: [key(1), key(2, 'a')] };
    const b: KeySet<VersionedKey> = { current: 'k1', keys: [key(1), key(2, 'b')] };
    expect(() => mergeKeySets(a, b)).toThrow(EncryptionKeyConflictError);
    expect(() => mergeKeySets(a, b)).toThrow(/rotated at the same time/);
    expect(() => mergeKeySets(set(1, 1), { current: 'k1', keys: [{ ...key(1), secret: 'other' }] })).toThrow(/two different keys are both named "k1"/);
  });

  it('stages on a node: merges what was sent, keeps the new key staged, drops an abandoned staged key', () => {
    const local = set(1, 1, 2); // k2: left over from an interrupted rotation
    const sent: KeySet<VersionedKey> = { current: 'k1', keys: [key(1), key(3)] };
    const staged = applyStage(local, sent, 'k3');
    expect(staged.current).toBe('k1');
    expect(ids(staged)).toEqual(['k1', 'k3']);
    // A key that is already current here cannot be staged: another rotation got there first.
    expect(() => applyStage(set(3, 1, 3), sent, 'k3')).toThrow(/cannot be staged/);
  });

  it('activates only forward, and discards only staged keys', () => {
    const staged = set(1, 1, 2);
    expect(activateKey(staged, 'k2').current).toBe('k2');
    expect(() => activateKey(set(2, 1, 2), 'k1')).toThrow(/the newer key "k2" already is/);
    expect(() => applyActivate(set(1, 1), set(1, 1), 'k9')).toThrow(/never staged/);
    expect(ids(discardStagedKey(staged, 'k2'))).toEqual(['k1']);
    expect(discardStagedKey(staged, 'k9')).toBe(staged);
    expect(() => discardStagedKey(staged, 'k1')).toThrow(/not a staged key/);
    expect(() => discardStagedKey(set(2, 1, 2), 'k1')).toThrow(/may have encrypted data/);
  });
});

describe('rotation plan', () => {
  it('stages a key newer than any on any node, then activates it', async () => {
    const plan = await planRotation(
      [
        { node: 'cp1', keys: set(2, 1, 2) },
        { node: 'cp2', keys: set(2, 1, 2) },
      ],
      newKey,
    );
    expect(plan).toMatchObject({ previousKeyId: 'k2', newKeyId: 'k3new', abandoned: [], outOfSync: [] });
    expect(plan.staged.current).toBe('k2');
    expect(ids(plan.staged)).toEqual(['k1', 'k2', 'k3new']);
    expect(plan.active.current).toBe('k3new');
    expect(ids(plan.active)).toEqual(ids(plan.staged));
  });

  it('unites the nodes, brings a lagging node up to date and drops the staged key of an interrupted rotation', async () => {
    const plan = await planRotation(
      [
        { node: 'cp1', keys: set(2, 1, 2, 3) }, // k3 staged, never activated anywhere
        { node: 'cp2', keys: set(1, 1, 2) }, // missed the activation of k2
        { node: 'cp3', keys: set(2, 1, 2) },
      ],
      newKey,
    );
    expect(plan.previousKeyId).toBe('k2');
    expect(plan.abandoned).toEqual(['k3']);
    expect(plan.outOfSync).toEqual(['cp2']);
    // Newer than the abandoned key too, so no node can hold a different key of its generation.
    expect(plan.newKeyId).toBe('k4new');
    expect(ids(plan.staged)).toEqual(['k1', 'k2', 'k4new']);
    // cp1 still holds k3: its stage drops it.
    expect(ids(applyStage(set(2, 1, 2, 3), plan.staged, 'k4new'))).toEqual(['k1', 'k2', 'k4new']);
  });

  it('names the nodes whose keys conflict', async () => {
    const a: KeySet<VersionedKey> = { current: 'k2a', keys: [key(1), key(2, 'a')] };
    const b: KeySet<VersionedKey> = { current: 'k2b', keys: [key(1), key(2, 'b')] };
    await expect(planRotation([{ node: 'cp1', keys: a }, { node: 'cp2', keys: set(1, 1) }, { node: 'cp3', keys: b }], newKey)).rejects.toThrow(
      /keys of node "cp3" conflict with those of "cp1", "cp2"/,
    );
  });

  it('maps aesgcm keys by their key-<n> names, the write key first', async () => {
    const k1 = await generateAesgcmKey(crypto);
    const k2 = await generateAesgcmKey(crypto, [k1]);
    const asSet = aesgcmKeySet([k1, k2]); // key-2 newer than the write key: staged
    expect(stagedKeys(asSet).map((k) => k.id)).toEqual(['key-2']);
    expect(aesgcmKeysOf(activateKey(asSet, 'key-2')).map((k) => k.name)).toEqual(['key-2', 'key-1']);
    expect(() => aesgcmKeySet([{ name: 'mine', secret: k1.secret }])).toThrow(/was not made by k8sd/);
  });
});

describe('KEK ring: staged KEKs', () => {
  let root: string;
  beforeEach(async () => { root = await mkdtemp(path.join(tmpdir(), 'k8s-stage-')); });
  afterEach(async () => { await rm(root, { recursive: true, force: true }); });

  it('decrypts with a staged KEK, wraps with the current one, and keeps the staged state on disk (0600)', async () => {
    const a = await KekStore.open({ file: path.join(root, 'a', 'ring.json'), crypto });
    const b = await KekStore.open({ file: path.join(root, 'b', 'ring.json'), crypto, create: false, seed: a.exportRing() });
    const first = a.currentKeyId;
    const next = await generateKek(crypto, 2);
    const staged = kekRingOf(stageKey(a.exportRing(), next));
    for (const store of [a, b]) await store.stage(staged, next.id);
    expect(b.currentKeyId).toBe(first);
    expect(b.list().find((k) => k.id === next.id)).toMatchObject({ current: false, staged: true });
    expect((await b.wrap(Buffer.from('dek'))).keyId).toBe(first);

    await a.activate(kekRingOf(activateKey(staged, next.id)), next.id);
    const wrapped = await a.wrap(Buffer.from('dek'));
    expect(wrapped.keyId).toBe(next.id);
    expect((await b.unwrap(wrapped.ciphertext, wrapped.keyId)).toString()).toBe('dek');

    const reopened = await KekStore.open({ file: path.join(root, 'b', 'ring.json'), crypto, create: false });
    expect(reopened.currentKeyId).toBe(first);
    expect(reopened.has(next.id)).toBe(true);
    expect((await stat(path.join(root, 'b', 'ring.json'))).mode & 0o777).toBe(0o600);

    // A join that merges the activated ring switches too; the staged KEK cannot be discarded any more.
    await b.adopt(a.exportRing());
    expect(b.currentKeyId).toBe(next.id);
    await expect(b.discard(next.id)).rejects.toThrow(/not a staged key/);
  });
});

const kmsConfig: ClusterSecurityConfig = {
  auditLevel: 'Policy',
  podSecurity: { enforce: 'baseline', audit: 'restricted', warn: 'restricted', exemptNamespaces: ['kube-system'] },
  secretsEncryption: 'kms',
};

describe('two control-plane nodes rotating through stage and activate', () => {
  let roots: string[];
  let nodes: Array<{ name: string; layout: Layout; manager: SecurityManager }>;

  beforeEach(async () => {
    roots = [await mkdtemp(path.join(tmpdir(), 'k8s-cp1-')), await mkdtemp(path.join(tmpdir(), 'k8s-cp2-'))];
    nodes = roots.map((root, i) => {
      const layout = new Layout({ K8S_ROOT: root });
      return { name: `cp${i + 1}`, layout, manager: new SecurityManager({ layout, crypto }) };
    });
  });
  afterEach(async () => {
    for (const n of nodes) await n.manager.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  async function joinBoth(config: ClusterSecurityConfig): Promise<void> {
    const [cp1, cp2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    if (config.secretsEncryption === 'kms') {
      await cp1.manager.beforeApiserver(config);
      await cp2.manager.beforeApiserver(config, { kekRing: cp1.manager.exportKekRing() });
      return;
    }
    for (const file of await cp1.manager.files(config)) writeFileAtomic(file.path, file.content, file.mode);
    const enc = path.join('etc', 'encryption', 'enc.yaml');
    writeFileAtomic(cp2.layout.common(enc), await readFile(cp1.layout.common(enc), 'utf8'), 0o600);
  }

  const collect = (config: ClusterSecurityConfig): Array<{ node: string; keys: EncryptionKeys }> => nodes.map((n) => ({ node: n.name, keys: n.manager.exportKeys(config) }));

  it('KMS: after the stage every plugin decrypts the new KEK; after the activation every plugin wraps with it', async () => {
    await joinBoth(kmsConfig);
    const [cp1, cp2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const clients = nodes.map((n) => createKmsClient(kmsPaths(n.layout).socket));
    try {
      const before = (await clients[0]!.status()).keyId;
      const plan = await cp1.manager.planClusterRotation(kmsConfig, collect(kmsConfig));
      for (const n of nodes) await n.manager.stageKey(kmsConfig, plan.staged, plan.newKeyId);
      // Staged: both plugins still report (and wrap with) the previous KEK.
      for (const c of clients) expect((await c.status()).keyId).toBe(before);
      for (const n of nodes) expect(n.manager.keySummary(kmsConfig)).toMatchObject({ writeKeyId: before, stagedKeyIds: [plan.newKeyId] });

      await cp1.manager.activateKey(kmsConfig, plan.active, plan.newKeyId);
      // cp1's apiserver now writes under the new KEK; cp2's plugin (not yet activated) must read it.
      const written = await clients[0]!.encrypt(Buffer.from('a DEK seed written through cp1'));
      expect(written.keyId).toBe(plan.newKeyId);
      expect((await clients[1]!.decrypt({ ciphertext: written.ciphertext, keyId: written.keyId })).toString()).toBe('a DEK seed written through cp1');

      await cp2.manager.activateKey(kmsConfig, plan.active, plan.newKeyId);
      for (const c of clients) expect((await c.status()).keyId).toBe(plan.newKeyId);
      expect(cp1.manager.keySummary(kmsConfig)).toEqual(cp2.manager.keySummary(kmsConfig));
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('KMS: a stage that failed on one node is undone on the others, leaving the rings as they were', async () => {
    await joinBoth(kmsConfig);
    const [cp1] = nodes as [(typeof nodes)[0]];
    const before = cp1.manager.exportKeys(kmsConfig);
    const plan = await cp1.manager.planClusterRotation(kmsConfig, collect(kmsConfig));
    await cp1.manager.stageKey(kmsConfig, plan.staged, plan.newKeyId);
    // (cp2 did not answer) → rollback: discard where it landed.
    await cp1.manager.discardStagedKey(kmsConfig, plan.newKeyId);
    expect(cp1.manager.exportKeys(kmsConfig)).toEqual(before);
    // Discarding twice, or on a node the key never reached, is harmless.
    await cp1.manager.discardStagedKey(kmsConfig, plan.newKeyId);
    expect(nodes[1]!.manager.keySummary(kmsConfig).stagedKeyIds).toEqual([]);
  });

  it('KMS: refuses to plan from a ring whose key does not match its id', async () => {
    await joinBoth(kmsConfig);
    const keys = collect(kmsConfig);
    const tampered = keys[1]!.keys as { provider: 'kms'; ring: { keys: Array<{ secret: string }> } };
    tampered.ring.keys[0]!.secret = (await crypto.randomBytes(32)).toString('base64');
    await expect(nodes[0]!.manager.planClusterRotation(kmsConfig, keys)).rejects.toThrow(/KEK ring of node "cp2".*does not match its fingerprint/);
  });

  it('aesgcm: the new key is a read-only second key on every node first, then the write key', async () => {
    const config: ClusterSecurityConfig = { ...kmsConfig, secretsEncryption: 'aesgcm' };
    await joinBoth(config);
    const plan = await nodes[0]!.manager.planClusterRotation(config, collect(config));
    expect(plan).toMatchObject({ provider: 'aesgcm', previousKeyId: 'key-1', newKeyId: 'key-2' });
    for (const n of nodes) {
      const change = await n.manager.stageKey(config, plan.staged, plan.newKeyId);
      expect(change.files.map((f) => f.mode)).toEqual([0o600]);
      for (const f of change.files) writeFileAtomic(f.path, f.content, f.mode);
      expect(n.manager.keySummary(config)).toEqual({ provider: 'aesgcm', writeKeyId: 'key-1', keyIds: ['key-1', 'key-2'], stagedKeyIds: ['key-2'] });
    }
    for (const n of nodes) {
      const change = await n.manager.activateKey(config, plan.active, plan.newKeyId);
      for (const f of change.files) writeFileAtomic(f.path, f.content, f.mode);
    }
    const [a, b] = nodes.map((n) => n.manager.exportKeys(config)) as [EncryptionKeys, EncryptionKeys];
    expect(a).toEqual(b);
    expect(a.provider === 'aesgcm' && a.keys.map((k) => k.name)).toEqual(['key-2', 'key-1']);
  });
});
