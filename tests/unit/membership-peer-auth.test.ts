import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { NodeRecord } from '../../src/datastore/state.js';
import type { K8sd } from '../../src/k8sd/daemon.js';
import { ApiError, Request } from '../../src/k8sd/http.js';
import { fingerprintOf } from '../../src/k8sd/identity.js';
import { controlPlanePeerWith, isControlPlaneCaller, requireControlPlaneCaller, trustedPeerSources } from '../../src/k8sd/cluster/peer-auth.js';
import { TrustedPeers } from '../../src/k8sd/trusted-peers.js';
import { PeerRecord, writePeers } from '../../src/k8sd/cluster/peer.js';
import { Layout } from '../../src/layout.js';

const crypto = new NodeCryptoBackend();

async function clusterCert(cn: string): Promise<string> {
  const kp = await crypto.generateKeyPair('ecdsa-p256');
  const now = Date.now();
  return crypto.createCertificate(
    { subject: { commonName: cn }, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['serverAuth', 'clientAuth'], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) },
    kp,
  );
}

const peer = (name: string, role: PeerRecord['role'], fingerprint: string): PeerRecord => ({ name, address: '10.0.0.1', role, fingerprint, clusterPort: 6400 });

describe('which peer is a control-plane node', () => {
  const peers = [peer('cp1', 'control-plane', 'aa'), peer('w1', 'worker', 'bb')];

  it('finds a control-plane peer by its fingerprint', () => {
    expect(controlPlanePeerWith(peers, 'aa')?.name).toBe('cp1');
  });

  it('does not take a worker, an unknown certificate or no certificate for one', () => {
    expect(controlPlanePeerWith(peers, 'bb')).toBeUndefined();
    expect(controlPlanePeerWith(peers, 'cc')).toBeUndefined();
    expect(controlPlanePeerWith(peers, undefined)).toBeUndefined();
  });
});

describe('authorizing a caller on routes that workers serve', () => {
  let root: string;
  let layout: Layout;
  let cpCert: string;
  let workerCert: string;
  let newCpCert: string;

  beforeEach(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'peer-auth-'));
    layout = new Layout({ K8S_ROOT: root });
    [cpCert, workerCert, newCpCert] = await Promise.all([clusterCert('k8sd@cp1'), clusterCert('k8sd@w1'), clusterCert('k8sd@cp2')]);
    writePeers(layout, [peer('cp1', 'control-plane', fingerprintOf(crypto, cpCert)), peer('w1', 'worker', fingerprintOf(crypto, workerCert))]);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const node = (name: string, role: NodeRecord['role'], cert: string): NodeRecord => ({ name, address: '10.0.0.2', role, clusterCert: cert, joinedAt: 'then' });
  const withTrust = (d: Pick<K8sd, 'layout' | 'crypto' | 'state'>): K8sd => ({ ...d, trustedPeers: new TrustedPeers(trustedPeerSources(d)) }) as unknown as K8sd;
  const daemon = (nodes?: NodeRecord[]): K8sd =>
    withTrust({ layout, crypto, state: nodes ? { listNodes: async () => nodes } : undefined } as unknown as K8sd);
  const request = (cert?: string): Request => ({ peerFingerprint: cert ? fingerprintOf(crypto, cert) : undefined }) as Request;

  it('a worker (no datastore) accepts a control-plane node from peers.json', async () => {
    expect(await isControlPlaneCaller(daemon(), fingerprintOf(crypto, cpCert))).toBe(true);
  });

  it('a worker refuses another worker and a control-plane node it does not know yet', async () => {
    expect(await isControlPlaneCaller(daemon(), fingerprintOf(crypto, workerCert))).toBe(false);
    expect(await isControlPlaneCaller(daemon(), fingerprintOf(crypto, newCpCert))).toBe(false);
  });

  it('a control-plane node also accepts a control-plane member from the node records', async () => {
    const d = daemon([node('cp2', 'control-plane', newCpCert), node('w1', 'worker', workerCert)]);
    expect(await isControlPlaneCaller(d, fingerprintOf(crypto, newCpCert))).toBe(true);
    expect(await isControlPlaneCaller(d, fingerprintOf(crypto, workerCert))).toBe(false);
  });

  it('an unreachable datastore falls back to refusing', async () => {
    const d = withTrust({ layout, crypto, state: { listNodes: async () => Promise.reject(new Error('etcd down')) } } as unknown as K8sd);
    expect(await isControlPlaneCaller(d, fingerprintOf(crypto, newCpCert))).toBe(false);
  });

  it('refuses with 403 and says what the caller may not do', async () => {
    await expect(requireControlPlaneCaller(daemon(), request(workerCert), 'ask it to leave')).rejects.toMatchObject({ status: 403, message: expect.stringContaining('may ask it to leave') });
    await expect(requireControlPlaneCaller(daemon(), request(), 'ask it to leave')).rejects.toBeInstanceOf(ApiError);
    await expect(requireControlPlaneCaller(daemon(), request(cpCert), 'ask it to leave')).resolves.toBeUndefined();
  });
});
