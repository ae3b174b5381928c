// What certificates this node holds, when they expire, and who manages them.
import { existsSync, readFileSync } from 'node:fs';
import type { CertEntry } from '../../api/index.js';
import { CryptoBackend } from '../../crypto/types.js';
import { FileSpec } from '../../host/files.js';
import { Layout } from '../../layout.js';
import { kubeconfigCertFiles, kubeconfigClient } from '../../pki/signer.js';
import { CAS, KUBECONFIGS, LEAVES, NodeRole } from '../../pki/table.js';
import { kubeletClientStoreFile } from '../../services/kubelet-client-store.js';


export type { CertEntry };

/** The kubeconfig whose certificate the kubelet renews itself (rotateCertificates). */
export const KUBELET_KUBECONFIG = 'kubelet.conf';

export interface ExternalRecord {
  certificates: string[];
  cas: string[];
}

export function readExternal(layout: Layout): ExternalRecord {
  if (!existsSync(layout.externalCertsFile)) return { certificates: [], cas: [] };
  return JSON.parse(readFileSync(layout.externalCertsFile, 'utf8')) as ExternalRecord;
}

/** The client certificate of a kubeconfig, embedded or named by path. */
export function kubeconfigCert(file: string): string | undefined {
  return kubeconfigClient(readFileSync(file, 'utf8')).cert;
}

/**
 * How long a client's current certificate must still be valid for a reload to be enough: client-go
 * reads the files again on each new connection and closes connections made with an older
 * certificate within 5 minutes.
 */
const RELOAD_MARGIN_MS = 15 * 60_000;

/**
 * Whether the service behind kubeconfig `name` must restart once `next` (the kubeconfig's new
 * text) is written with a new client certificate: its client does not reload certificates
 * (KubeconfigSpec.reloads), the kubeconfig itself changes (its CA bundle or server, which clients
 * read once; or an older kubeconfig that embedded the pair), or the current certificate is expired
 * or about to be.
 */
export function needsRestartForNewCert(layout: Layout, crypto: CryptoBackend, name: string, next: string | Buffer, now = Date.now()): boolean {
  const file = layout.kubeconfig(name);
  if (!kubeconfigCertFiles(layout, name) || !existsSync(file)) return true;
  const current = readFileSync(file, 'utf8');
  if (!Buffer.from(next).equals(Buffer.from(current))) return true;
  const cert = kubeconfigClient(current).cert;
  if (!cert) return true;
  return crypto.parseCertificate(firstPem(cert)).notAfter.getTime() - now < RELOAD_MARGIN_MS;
}

/** Of `names`, the kubeconfigs among `files` (about to be written) whose clients pick up the new certificate without a restart. */
export function reloadingKubeconfigs(layout: Layout, crypto: CryptoBackend, names: readonly string[], files: readonly FileSpec[]): Set<string> {
  const next = (n: string): string | Buffer | undefined => files.find((f) => f.path === layout.kubeconfig(n))?.content;
  return new Set(names.filter((n) => {
    const text = next(n);
    return text !== undefined && !needsRestartForNewCert(layout, crypto, n, text);
  }));
}

/** The first certificate of a PEM bundle. */
export function firstPem(pem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  return m ? m[0] + '\n' : pem;
}

export function inventory(layout: Layout, crypto: CryptoBackend, role: NodeRole, now = new Date()): CertEntry[] {
  const external = readExternal(layout);
  const out: CertEntry[] = [];
  const add = (name: string, kind: CertEntry['kind'], file: string, pem: string | undefined, services: string[], selfRenewing = false): void => {
    if (!pem) return;
    const info = crypto.parseCertificate(firstPem(pem));
    out.push({
      name,
      kind,
      file,
      subject: info.subject.commonName,
      ca: info.issuer.commonName,
      notBefore: info.notBefore.toISOString(),
      expires: info.notAfter.toISOString(),
      residualSeconds: Math.floor((info.notAfter.getTime() - now.getTime()) / 1000),
      externallyManaged: kind === 'ca' ? external.cas.includes(name) : external.certificates.includes(name),
      services,
      ...(selfRenewing ? { selfRenewing } : {}),
    });
  };
  for (const leaf of LEAVES.filter((l) => l.roles.includes(role))) {
    const file = layout.pki(leaf.certFile);
    if (existsSync(file)) add(leaf.name, 'certificate', file, readFileSync(file, 'utf8'), leaf.services);
  }
  for (const kc of KUBECONFIGS.filter((k) => k.roles.includes(role))) {
    const file = layout.kubeconfig(kc.name);
    // The kubelet talks to the API server with its store's certificate (it renews that one itself).
    const store = kc.name === KUBELET_KUBECONFIG ? kubeletClientStoreFile(layout) : undefined;
    if (store) add(kc.name, 'kubeconfig', store, readFileSync(store, 'utf8'), kc.services, true);
    else if (existsSync(file)) add(kc.name, 'kubeconfig', file, kubeconfigCert(file), kc.services);
  }
  for (const ca of CAS) {
    const file = layout.pki(ca.certFile);
    if (existsSync(file)) add(ca.name, 'ca', file, readFileSync(file, 'utf8'), []);
  }
  return out;
}
