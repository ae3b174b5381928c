import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { backdated, ensureCas, issueNodeCertificates, pkiFiles, PkiError, renderKubeconfig } from '../../src/pki/signer.js';
import { NodeIdentity, refreshableNames } from '../../src/pki/table.js';
import { Layout } from '../../src/layout.js';

const crypto = new NodeCryptoBackend();
const node: NodeIdentity = {
  hostname: 'cp1',
  address: '10.0.0.5',
  localAddresses: ['10.0.0.5', '127.0.0.1', 'fe80::1'],
  serviceIps: ['10.152.183.1'],
  extraSans: ['k8s.example.com', '192.0.2.10'],
  clusterDomain: 'cluster.local',
};

describe('PKI', () => {
  it('issues every control-plane certificate and kubeconfig, chained to the right CA, with 1-year leaves and 10-year CAs', async () => {
    const cas = await ensureCas(crypto, 'ecdsa-p256', {});
    const { leaves, kubeconfigs } = await issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256' });
    expect(Object.keys(leaves).sort()).toEqual(
      ['apiserver', 'apiserver-etcd-client', 'apiserver-kubelet-client', 'etcd-peer', 'etcd-server', 'front-proxy-client', 'k8sd-etcd-client', 'kubelet'].sort(),
    );
    expect(Object.keys(kubeconfigs).sort()).toEqual(['admin.conf', 'controller.conf', 'flannel.conf', 'kubelet.conf', 'proxy.conf', 'scheduler.conf']);
    const day = 86_400_000;
    const ca = crypto.parseCertificate(cas.ca.cert);
    expect(Math.round((ca.notAfter.getTime() - Date.now()) / day)).toBeGreaterThanOrEqual(3649);
    const api = crypto.parseCertificate(leaves.apiserver!.cert);
    expect(Math.round((api.notAfter.getTime() - Date.now()) / day)).toBe(365);
    expect(api.dnsNames).toEqual(expect.arrayContaining(['kubernetes', 'kubernetes.default.svc.cluster.local', 'k8s.example.com', 'cp1']));
    expect(api.ipAddresses).toEqual(expect.arrayContaining(['10.0.0.5', '10.152.183.1', '192.0.2.10', '127.0.0.1']));
    expect(api.ipAddresses).not.toContain('fe80::1');
    expect(await crypto.verifyIssuedBy(leaves.apiserver!.cert, cas.ca.cert)).toBe(true);
    expect(await crypto.verifyIssuedBy(kubeconfigs['admin.conf']!.cert, cas['client-ca'].cert)).toBe(true);
    expect(await crypto.verifyIssuedBy(leaves['etcd-server']!.cert, cas['etcd-ca'].cert)).toBe(true);
    // The kubelet's serving certificate: its own CA, its own name and address only.
    expect(await crypto.verifyIssuedBy(leaves.kubelet!.cert, cas['kubelet-ca'].cert)).toBe(true);
    expect(await crypto.verifyIssuedBy(leaves.kubelet!.cert, cas.ca.cert)).toBe(false);
    const kubelet = crypto.parseCertificate(leaves.kubelet!.cert);
    expect([kubelet.dnsNames, kubelet.ipAddresses]).toEqual([['cp1'], ['10.0.0.5']]);
    expect(crypto.parseCertificate(kubeconfigs['admin.conf']!.cert).subject).toEqual({ commonName: 'kubernetes-admin', organization: ['system:masters'] });
    expect(crypto.parseCertificate(kubeconfigs['kubelet.conf']!.cert).subject.commonName).toBe('system:node:cp1');
  });

  it('writes keys and kubeconfigs 0600 and certificates 0644', async () => {
    const cas = await ensureCas(crypto, 'ecdsa-p256', {});
    const issued = await issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256' });
    const files = pkiFiles(new Layout({ K8S_ROOT: '/r' }), { cas, ...issued, serviceAccountKey: 'k', serviceAccountPub: 'p' }, 'https://127.0.0.1:6443', 'control-plane');
    for (const f of files) {
      if (/\.(key|conf)$/.test(f.path)) expect(f.mode, f.path).toBe(0o600);
      else expect(f.mode, f.path).toBe(0o644);
    }
    expect(files.some((f) => f.path === '/r/etc/kubernetes/pki/ca.key')).toBe(true);
    expect(pkiFiles(new Layout({ K8S_ROOT: '/r' }), { cas }, 'https://x', 'worker').some((f) => f.path.endsWith('.key'))).toBe(false);
  });

  it('supports RSA keys', async () => {
    const cas = await ensureCas(crypto, 'rsa-2048', {});
    expect(crypto.parseCertificate(cas.ca.cert).publicKeyAlgorithm).toBe('rsa');
  });

  it('rejects a supplied CA whose key does not match, and a non-CA certificate', async () => {
    const a = await ensureCas(crypto, 'ecdsa-p256', {});
    const b = await ensureCas(crypto, 'ecdsa-p256', {});
    await expect(ensureCas(crypto, 'ecdsa-p256', { ca: { crt: a.ca.cert, key: b.ca.key! } })).rejects.toThrow(/ca-key: does not match ca-crt/);
    const leaf = (await issueNodeCertificates(crypto, a, node, 'control-plane', { keyType: 'ecdsa-p256' })).leaves.apiserver!;
    await expect(ensureCas(crypto, 'ecdsa-p256', { ca: { crt: leaf.cert, key: leaf.key } })).rejects.toBeInstanceOf(PkiError);
  });

  it('requires every leaf when a CA is supplied without its key', async () => {
    const a = await ensureCas(crypto, 'ecdsa-p256', {});
    const cas = await ensureCas(crypto, 'ecdsa-p256', { ca: { crt: a.ca.cert } });
    await expect(issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256' })).rejects.toThrow(/apiserver-crt: the ca CA was supplied without its key/);
  });

  it('marks supplied leaves externally managed after checking chain and SANs', async () => {
    const cas = await ensureCas(crypto, 'ecdsa-p256', {});
    const own = await issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256' }, {}, new Set(['apiserver']));
    const ok = await issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256' }, { apiserver: { crt: own.leaves.apiserver!.cert, key: own.leaves.apiserver!.key } }, new Set(['apiserver']));
    expect(ok.leaves.apiserver!.external).toBe(true);
    const other = await ensureCas(crypto, 'ecdsa-p256', {});
    await expect(
      issueNodeCertificates(crypto, other, node, 'control-plane', { keyType: 'ecdsa-p256' }, { apiserver: { crt: own.leaves.apiserver!.cert, key: own.leaves.apiserver!.key } }, new Set(['apiserver'])),
    ).rejects.toThrow(/apiserver-crt: is not signed by the cluster's server CA/);
    await expect(
      issueNodeCertificates(crypto, cas, { ...node, extraSans: ['other.example.com'] }, 'control-plane', { keyType: 'ecdsa-p256' }, { apiserver: { crt: own.leaves.apiserver!.cert, key: own.leaves.apiserver!.key } }, new Set(['apiserver'])),
    ).rejects.toThrow(/missing SANs other.example.com/);
  });

  it('renders kubeconfigs with embedded credentials', () => {
    const text = renderKubeconfig('https://127.0.0.1:6443', ['CA\n'], 'CERT', 'KEY');
    expect(text).toContain('server: https://127.0.0.1:6443');
    expect(text).toContain(Buffer.from('KEY').toString('base64'));
    expect(refreshableNames('worker')).toEqual(['kubelet', 'proxy.conf', 'kubelet.conf', 'flannel.conf']);
  });
});

describe('back-dating', () => {
  afterEach(() => vi.unstubAllEnvs());
  const now = new Date('2026-01-01T12:00:00Z');

  it('back-dates notBefore by 5 minutes', () => {
    expect(backdated(now).toISOString()).toBe('2026-01-01T11:55:00.000Z');
  });

  it('takes the test hook K8S_TEST_CERT_BACKDATE_SECONDS, and ignores a value that is not a number of seconds', () => {
    vi.stubEnv('K8S_TEST_CERT_BACKDATE_SECONDS', '60');
    expect(backdated(now).toISOString()).toBe('2026-01-01T11:59:00.000Z');
    vi.stubEnv('K8S_TEST_CERT_BACKDATE_SECONDS', 'soon');
    expect(backdated(now).toISOString()).toBe('2026-01-01T11:55:00.000Z');
    vi.stubEnv('K8S_TEST_CERT_BACKDATE_SECONDS', '-1');
    expect(backdated(now).toISOString()).toBe('2026-01-01T11:55:00.000Z');
  });
});
