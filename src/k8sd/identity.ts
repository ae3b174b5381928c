// The node's own k8sd certificate for the cluster API (port 6400). It is self-signed;
// peers trust it by its SHA-256 fingerprint (join tokens carry it) and by membership records.
import { existsSync, readFileSync } from 'node:fs';
import { CryptoBackend } from '../crypto/types.js';
import { writeFileAtomic } from '../host/files.js';
import { Layout } from '../layout.js';

export interface ClusterIdentity {
  cert: string;
  key: string;
  /** Lower-case hex SHA-256 of the certificate's DER. */
  fingerprint: string;
}

export function fingerprintOf(backend: CryptoBackend, certPem: string): string {
  return backend.parseCertificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
}

export async function ensureClusterIdentity(layout: Layout, backend: CryptoBackend, name: string, addresses: string[]): Promise<ClusterIdentity> {
  if (existsSync(layout.clusterCert) && existsSync(layout.clusterKey)) {
    const cert = readFileSync(layout.clusterCert, 'utf8');
    return { cert, key: readFileSync(layout.clusterKey, 'utf8'), fingerprint: fingerprintOf(backend, cert) };
  }
  const key = await backend.generateKeyPair('ecdsa-p256');
  const now = new Date();
  const cert = await backend.createCertificate(
    {
      subject: { commonName: `k8sd@${name}` },
      dnsNames: [name, 'localhost'],
      ipAddresses: [...new Set(['127.0.0.1', ...addresses])],
      isCA: false,
      keyUsage: ['digitalSignature', 'keyEncipherment'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      notBefore: new Date(now.getTime() - 5 * 60_000),
      notAfter: new Date(now.getTime() + 10 * 365 * 24 * 3600_000),
    },
    key,
  );
  writeFileAtomic(layout.clusterKey, key.privateKeyPem, 0o600);
  writeFileAtomic(layout.clusterCert, cert, 0o644);
  return { cert, key: key.privateKeyPem, fingerprint: fingerprintOf(backend, cert) };
}
