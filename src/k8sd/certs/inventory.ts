// What certificates this node holds, when they expire, and who manages them.
import { existsSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import type { CertEntry } from '../../api/index.js';
import { CryptoBackend } from '../../crypto/types.js';
import { Layout } from '../../layout.js';
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

/** The client certificate embedded in a kubeconfig. */
export function kubeconfigCert(file: string): string | undefined {
  const doc = yaml.load(readFileSync(file, 'utf8')) as { users?: Array<{ user?: Record<string, string> }> };
  const data = doc.users?.[0]?.user?.['client-certificate-data'];
  return data ? Buffer.from(data, 'base64').toString() : undefined;
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
