// metrics-server's serving certificate. k8sd issues it from a CA of its own, made for this one
// certificate: the CA's key signs the leaf and is then discarded (never stored), so the
// APIService's caBundle trusts exactly this certificate and nothing else k8sd signs. The cluster
// CA is not used because it also signs kubelet serving certificates from CSRs: a certificate for
// metrics-server's Service name must not be obtainable that way. The pair lives in the Secret
// kube-system/metrics-server-tls; k8sd reuses it while it is valid and replaces the whole set
// (CA, certificate, key, caBundle) when renewal is due.
import { CertificateTemplate, CryptoBackend, KeyAlgorithm } from '../../crypto/types.js';
import { ClusterConfig } from '../../datastore/state.js';
import { CA_KEY_USAGE, LEAF_KEY_USAGE } from '../../pki/table.js';
import { backdated } from '../../pki/signer.js';
import { renewalThresholdMs } from '../certs/renewal.js';
import { metricsServerDnsNames } from './manifests.js';

export interface ServingPair {
  cert: string;
  key: string;
  ca: string;
}

export interface ServingPolicy {
  keyType: KeyAlgorithm;
  clusterDomain: string;
  certificates: ClusterConfig['certificates'];
}

/** Why an existing pair cannot be kept, or undefined when it can. */
export async function servingPairProblem(crypto: CryptoBackend, pair: ServingPair, policy: ServingPolicy, now = Date.now()): Promise<string | undefined> {
  let info;
  try {
    info = crypto.parseCertificate(pair.cert);
  } catch {
    return 'the certificate does not parse';
  }
  const names = metricsServerDnsNames(policy.clusterDomain);
  if (!names.every((n) => info.dnsNames.includes(n))) return 'the certificate lacks a name of the Service';
  const lifetime = info.notAfter.getTime() - info.notBefore.getTime();
  if (info.notAfter.getTime() - now < renewalThresholdMs(lifetime, policy.certificates)) return 'renewal is due';
  if (!(await crypto.verifyIssuedBy(pair.cert, pair.ca).catch(() => false))) return 'the CA did not sign the certificate';
  if (!(await crypto.keyMatchesCertificate(pair.key, pair.cert).catch(() => false))) return 'the key does not match the certificate';
  return undefined;
}

/** A new one-certificate CA and the serving certificate it signs; the CA key is dropped. */
export async function issueServingPair(crypto: CryptoBackend, policy: ServingPolicy, now = new Date()): Promise<ServingPair> {
  const notBefore = backdated(now);
  const notAfter = new Date(now.getTime() + policy.certificates.lifetimeMs);
  const caKey = await crypto.generateKeyPair(policy.keyType);
  const caTemplate: CertificateTemplate = {
    subject: { commonName: `k8sd metrics-server CA ${now.toISOString()}` },
    isCA: true,
    pathLength: 0,
    keyUsage: CA_KEY_USAGE,
    notBefore,
    notAfter,
  };
  const ca = await crypto.createCertificate(caTemplate, caKey);
  const key = await crypto.generateKeyPair(policy.keyType);
  const names = metricsServerDnsNames(policy.clusterDomain);
  const cert = await crypto.createCertificate(
    { subject: { commonName: names[0]! }, dnsNames: names, isCA: false, keyUsage: LEAF_KEY_USAGE, extKeyUsage: ['serverAuth'], notBefore, notAfter },
    key,
    { certificatePem: ca, privateKeyPem: caKey.privateKeyPem },
  );
  return { cert, key: key.privateKeyPem, ca };
}
