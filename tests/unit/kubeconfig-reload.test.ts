import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { needsRestartForNewCert } from '../../src/k8sd/certs/inventory.js';
import { readCreds } from '../../src/k8sd/kube.js';
import { ensureCas, issueNodeCertificates, kubeconfigClient, kubeconfigFiles, renderKubeconfig } from '../../src/pki/signer.js';
import { NodeIdentity } from '../../src/pki/table.js';
import { Layout } from '../../src/layout.js';

const crypto = new NodeCryptoBackend();
const node: NodeIdentity = { hostname: 'cp1', address: '10.0.0.1', localAddresses: ['10.0.0.1', '127.0.0.1'], serviceIps: ['10.152.183.1'], extraSans: [], clusterDomain: 'cluster.local' };
const server = 'https://10.0.0.1:6443';

async function issued(lifetimeMs?: number) {
  const cas = await ensureCas(crypto, 'ecdsa-p256', {});
  const certs = await issueNodeCertificates(crypto, cas, node, 'control-plane', { keyType: 'ecdsa-p256', ...(lifetimeMs ? { leafLifetimeMs: lifetimeMs } : {}) });
  return { cas, kubeconfigs: certs.kubeconfigs };
}

function write(files: { path: string; content: string | Buffer }[]): void {
  for (const f of files) {
    mkdirSync(path.dirname(f.path), { recursive: true });
    writeFileSync(f.path, f.content);
  }
}

describe('kubeconfigs of clients that reload their certificate', () => {
  it('name the certificate and key files for controller, scheduler, proxy and flannel; admin and kubelet embed them', async () => {
    const l = new Layout({ K8S_ROOT: '/r' });
    const { cas, kubeconfigs } = await issued();
    const c = kubeconfigs['controller.conf']!;
    const files = kubeconfigFiles(l, 'controller.conf', server, [cas.ca.cert], c.cert, c.key);
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      ['/r/etc/kubernetes/pki/controller-kubeconfig.key', 0o600],
      ['/r/etc/kubernetes/pki/controller-kubeconfig.crt', 0o644],
      ['/r/etc/kubernetes/controller.conf', 0o600],
    ]);
    const user = (yaml.load(String(files[2]!.content)) as { users: Array<{ user: Record<string, string> }> }).users[0]!.user;
    expect(user).toEqual({ 'client-certificate': '/r/etc/kubernetes/pki/controller-kubeconfig.crt', 'client-key': '/r/etc/kubernetes/pki/controller-kubeconfig.key' });
    for (const name of ['admin.conf', 'kubelet.conf']) {
      const k = kubeconfigs[name]!;
      const only = kubeconfigFiles(l, name, server, [cas.ca.cert], k.cert, k.key);
      expect(only.map((f) => f.path)).toEqual([`/r/etc/kubernetes/${name}`]);
      expect(String(only[0]!.content)).toContain('client-certificate-data');
    }
  });

  it('are read the same way as embedded ones (k8sd probes, certs-status)', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kubeconfig-reload-'));
    const l = new Layout({ K8S_ROOT: root });
    const { cas, kubeconfigs } = await issued();
    const p = kubeconfigs['proxy.conf']!;
    write(kubeconfigFiles(l, 'proxy.conf', server, [cas.ca.cert], p.cert, p.key));
    expect(readCreds(l.kubeconfig('proxy.conf'))).toEqual({ server, ca: cas.ca.cert, cert: p.cert, key: p.key });
    expect(kubeconfigClient(renderKubeconfig(server, [cas.ca.cert], p.cert, p.key))).toEqual({ cert: p.cert, key: p.key });
  });
});

describe('needsRestartForNewCert', () => {
  it('is false only when the kubeconfig stays as it is and the running certificate has time left', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'kubeconfig-restart-'));
    const l = new Layout({ K8S_ROOT: root });
    const { cas, kubeconfigs } = await issued();
    const s = kubeconfigs['scheduler.conf']!;
    const next = (caPems: string[]) => String(kubeconfigFiles(l, 'scheduler.conf', server, caPems, s.cert, s.key)[2]!.content);
    // No kubeconfig yet, or one that still embeds the pair (written before k8sd named files).
    expect(needsRestartForNewCert(l, crypto, 'scheduler.conf', next([cas.ca.cert]))).toBe(true);
    write([{ path: l.kubeconfig('scheduler.conf'), content: renderKubeconfig(server, [cas.ca.cert], s.cert, s.key) }]);
    expect(needsRestartForNewCert(l, crypto, 'scheduler.conf', next([cas.ca.cert]))).toBe(true);
    // Files named, the same CA bundle: a reload is enough.
    write(kubeconfigFiles(l, 'scheduler.conf', server, [cas.ca.cert], s.cert, s.key));
    expect(needsRestartForNewCert(l, crypto, 'scheduler.conf', next([cas.ca.cert]))).toBe(false);
    // A CA bundle that changes (CA rotation) is read once, at start.
    expect(needsRestartForNewCert(l, crypto, 'scheduler.conf', next([cas.ca.cert, cas['client-ca'].cert]))).toBe(true);
    // The running certificate expires within the margin: client-go may keep old connections for 5 minutes.
    const soon = Date.now() + 365 * 24 * 3600_000;
    expect(needsRestartForNewCert(l, crypto, 'scheduler.conf', next([cas.ca.cert]), soon)).toBe(true);
    // A client that does not reload (the kubelet renews its own; admin.conf is no service).
    const k = kubeconfigs['kubelet.conf']!;
    write(kubeconfigFiles(l, 'kubelet.conf', server, [cas.ca.cert], k.cert, k.key));
    expect(needsRestartForNewCert(l, crypto, 'kubelet.conf', String(kubeconfigFiles(l, 'kubelet.conf', server, [cas.ca.cert], k.cert, k.key)[0]!.content))).toBe(true);
  });
});
