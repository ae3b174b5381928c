// TLS settings shared by k8sd's own Node HTTPS servers/clients and by the Go
// components' arguments. Both sides read the lists below, so they cannot drift.
//
// The choice follows the Go FIPS TLS policy (SP 800-52r2) that the Kubernetes
// components enforce in FIPS mode: TLS 1.2 and 1.3, ECDHE key exchange on P-256/P-384,
// AES-GCM only, ECDSA/RSA signatures with SHA-2. It is used in both modes, so a cluster
// does not change its TLS surface when FIPS is switched on.
import type { SecureContextOptions } from 'node:tls';

export interface CipherSuiteName {
  /** Go crypto/tls constant name, as kube-apiserver --tls-cipher-suites takes it. */
  go: string;
  /** OpenSSL name, as Node's `ciphers` option takes it. */
  openssl: string;
}

/** TLS 1.2 suites: ECDHE with AES-GCM, in preference order. */
export const TLS12_CIPHER_SUITES: readonly CipherSuiteName[] = [
  { go: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256', openssl: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
  { go: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', openssl: 'ECDHE-ECDSA-AES256-GCM-SHA384' },
  { go: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', openssl: 'ECDHE-RSA-AES128-GCM-SHA256' },
  { go: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', openssl: 'ECDHE-RSA-AES256-GCM-SHA384' },
];

/** TLS 1.3 suites; Go and OpenSSL use the same names (Go does not make them configurable). */
export const TLS13_CIPHER_SUITES: readonly string[] = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384'];

export interface CurveName {
  /** Name used by Node (ecdhCurve) and OpenSSL. */
  openssl: string;
  /** Go tls.CurveID constant. */
  go: string;
}

export const TLS_CURVES: readonly CurveName[] = [
  { openssl: 'P-256', go: 'CurveP256' },
  { openssl: 'P-384', go: 'CurveP384' },
];

export const TLS_MIN_VERSION = {
  node: 'TLSv1.2',
  /** kube-apiserver, kubelet, kube-* --tls-min-version. */
  go: 'VersionTLS12',
  /** etcd --tls-min-version. */
  etcd: 'TLS1.2',
} as const;

/**
 * Handshake signature algorithms: ECDSA on P-256/P-384 and RSA (PSS or PKCS#1 v1.5)
 * with SHA-2. Ed25519/Ed448 and SHA-1 are left out, as the Go FIPS policy does.
 */
export const TLS_SIGNATURE_ALGORITHMS: readonly string[] = [
  'ecdsa_secp256r1_sha256',
  'ecdsa_secp384r1_sha384',
  'rsa_pss_rsae_sha256',
  'rsa_pss_rsae_sha384',
  'rsa_pss_rsae_sha512',
  'rsa_pss_pss_sha256',
  'rsa_pss_pss_sha384',
  'rsa_pss_pss_sha512',
  'rsa_pkcs1_sha256',
  'rsa_pkcs1_sha384',
  'rsa_pkcs1_sha512',
];

export type NodeTlsDefaults = Required<
  Pick<SecureContextOptions, 'minVersion' | 'ciphers' | 'ecdhCurve' | 'sigalgs' | 'honorCipherOrder'>
>;

/**
 * Options for tls.createSecureContext / https.createServer / https.Agent. Spread them
 * first and add cert, key, ca and requestCert after.
 */
export function nodeTlsDefaults(): NodeTlsDefaults {
  return {
    minVersion: TLS_MIN_VERSION.node,
    // Node takes TLS 1.3 suite names in `ciphers` too and splits them out itself.
    ciphers: [...TLS12_CIPHER_SUITES.map((s) => s.openssl), ...TLS13_CIPHER_SUITES].join(':'),
    ecdhCurve: TLS_CURVES.map((c) => c.openssl).join(':'),
    sigalgs: TLS_SIGNATURE_ALGORITHMS.join(':'),
    honorCipherOrder: true,
  };
}

export interface GoTlsSettings {
  /** Value of --tls-cipher-suites (kube-*) and --cipher-suites (etcd), comma separated. */
  cipherSuites: string;
  minVersion: typeof TLS_MIN_VERSION.go;
  etcdMinVersion: typeof TLS_MIN_VERSION.etcd;
  /** For components that take curve preferences (Go names). */
  curves: string[];
}

export function goTlsSettings(): GoTlsSettings {
  return {
    cipherSuites: TLS12_CIPHER_SUITES.map((s) => s.go).join(','),
    minVersion: TLS_MIN_VERSION.go,
    etcdMinVersion: TLS_MIN_VERSION.etcd,
    curves: TLS_CURVES.map((c) => c.go),
  };
}
