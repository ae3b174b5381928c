import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import type { EtcdClient } from '../../src/datastore/etcd.js';
import { CaRotationRecord, ClusterState, PkiRecord } from '../../src/datastore/state.js';
import { PkiKeyWrapError, PkiKeyWrapper, PkiWrappingKeyFile, sealCaSet } from '../../src/pki/key-wrap.js';
import { ensureCas, generateServiceAccountKey } from '../../src/pki/signer.js';

const crypto = new NodeCryptoBackend();

/** Just enough of etcd for ClusterState's PKI records. */
class MemoryEtcd {
  readonly data = new Map<string, string>();
  async get(k: string): Promise<string | undefined> {
    return this.data.get(k);
  }
  async put(k: string, v: string): Promise<void> {
    this.data.set(k, v);
  }
  async create(k: string, v: string): Promise<boolean> {
    if (this.data.has(k)) return false;
    this.data.set(k, v);
    return true;
  }
  async putIfValue(k: string, expected: string, v: string): Promise<boolean> {
    if (this.data.get(k) !== expected) return false;
    this.data.set(k, v);
    return true;
  }
  async delete(k: string): Promise<number> {
    return this.data.delete(k) ? 1 : 0;
  }
  compactedTo?: string;
  async getWithRevision(k: string): Promise<{ value: string; modRevision: string } | undefined> {
    const value = this.data.get(k);
    return value === undefined ? undefined : { value, modRevision: '7' };
  }
  async compact(revision: string): Promise<void> {
    this.compactedTo = revision;
  }
}

function keyFile(): PkiWrappingKeyFile {
  return new PkiWrappingKeyFile(path.join(mkdtempSync(path.join(tmpdir(), 'pki-wrap-')), 'state', 'pki-wrapping-key.json'), () => crypto);
}

async function pkiRecord(): Promise<PkiRecord> {
  return { cas: await ensureCas(crypto, 'ecdsa-p256', {}), serviceAccountKey: await generateServiceAccountKey(crypto, 'ecdsa-p256') };
}

describe('PKI key wrapping', () => {
  it('stores every CA key and the service-account key wrapped, and reads them back unchanged', async () => {
    const etcd = new MemoryEtcd();
    const keys = keyFile();
    keys.install((await PkiKeyWrapper.generate(crypto)).document);
    expect(statSync(keys.file).mode & 0o777).toBe(0o600);
    const state = new ClusterState(etcd as unknown as EtcdClient, keys);
    const pki = await pkiRecord();
    await state.putPki(pki);
    const stored = etcd.data.get('/k8sd/pki/cluster')!;
    expect(stored).not.toContain('PRIVATE KEY');
    expect(stored).toContain('BEGIN CERTIFICATE');
    expect(await state.getPki()).toEqual(pki);
  });

  it('wraps whatever CAs the record holds, not a fixed list of names', async () => {
    const w = await PkiKeyWrapper.generate(crypto);
    const cas = await ensureCas(crypto, 'ecdsa-p256', {});
    const withNew = { ...cas, 'kubelet-serving-ca': { cert: cas.ca.cert, key: cas.ca.key! } };
    const sealed = await sealCaSet(w, 'pki/cluster/cas', withNew);
    expect(JSON.stringify(sealed)).not.toContain('PRIVATE KEY');
    expect(await w.unwrapPrivateKey('pki/cluster/cas/kubelet-serving-ca', sealed['kubelet-serving-ca'].key!)).toBe(cas.ca.key);
  });

  it('binds a wrapped key to its slot and key: moved or under another key, it does not unwrap', async () => {
    const w = await PkiKeyWrapper.generate(crypto);
    const other = await PkiKeyWrapper.generate(crypto);
    const wrapped = await w.wrapPrivateKey('pki/ca-rotation/old/ca', 'secret pem');
    await expect(w.unwrapPrivateKey('pki/ca-rotation/fresh/ca', wrapped)).rejects.toThrow(/failed authentication/);
    await expect(other.unwrapPrivateKey('pki/ca-rotation/old/ca', wrapped)).rejects.toThrow(/wrapped with PKI wrapping key/);
    const tampered = wrapped.slice(0, -4) + (wrapped.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    await expect(w.unwrapPrivateKey('pki/ca-rotation/old/ca', tampered)).rejects.toThrow(PkiKeyWrapError);
  });

  it('wraps both the old and the new CA keys of a CA rotation record', async () => {
    const etcd = new MemoryEtcd();
    const keys = keyFile();
    await keys.ensure();
    const state = new ClusterState(etcd as unknown as EtcdClient, keys);
    const old = await ensureCas(crypto, 'ecdsa-p256', {});
    const fresh = await ensureCas(crypto, 'ecdsa-p256', {});
    const record: CaRotationRecord = {
      id: 'r1', startedAt: 'now', startedOn: 'cp1', phase: 'trust', done: [],
      old: { ca: old.ca, 'client-ca': old['client-ca'], 'front-proxy-ca': old['front-proxy-ca'] },
      fresh: { ca: fresh.ca, 'client-ca': fresh['client-ca'], 'front-proxy-ca': fresh['front-proxy-ca'] },
      crossSignedCa: fresh.ca.cert,
    };
    expect(await state.createCaRotation(record)).toBe(true);
    expect(etcd.data.get('/k8sd/pki/ca-rotation')).not.toContain('PRIVATE KEY');
    expect(await state.getCaRotation()).toEqual(record);
  });

  it('migrates a plaintext record from before wrapping, creating the wrapping key', async () => {
    const etcd = new MemoryEtcd();
    const keys = keyFile();
    const pki = await pkiRecord();
    etcd.data.set('/k8sd/pki/cluster', JSON.stringify(pki));
    const state = new ClusterState(etcd as unknown as EtcdClient, keys);
    expect(await state.wrapPlaintextKeys()).toEqual(['/k8sd/pki/cluster']);
    expect(etcd.compactedTo).toBe('7');
    expect(keys.exists()).toBe(true);
    expect(etcd.data.get('/k8sd/pki/cluster')).not.toContain('PRIVATE KEY');
    expect(await state.getPki()).toEqual(pki);
    expect(await state.wrapPlaintextKeys()).toEqual([]);
  });

  it('refuses, naming the file, when the record is wrapped and this node has no wrapping key', async () => {
    const etcd = new MemoryEtcd();
    const keys = keyFile();
    await keys.ensure();
    await new ClusterState(etcd as unknown as EtcdClient, keys).putPki(await pkiRecord());
    const bare = keyFile();
    await expect(new ClusterState(etcd as unknown as EtcdClient, bare).getPki()).rejects.toThrow(/pki-wrapping-key\.json is missing/);
  });

  it('rejects a wrapping-key file whose id does not match its key', async () => {
    const keys = keyFile();
    const doc = (await PkiKeyWrapper.generate(crypto)).document;
    keys.install(doc);
    writeFileSync(keys.file, JSON.stringify({ ...doc, id: 'pkiwrap-0000000000000000' }));
    await expect(keys.wrapper()).rejects.toThrow(/does not match its fingerprint/);
  });
});
