// The one interface for cryptography. Every key, certificate, CSR, hash, random
// token, signature, HMAC and symmetric encryption in src/ and charms/ goes through
// a CryptoBackend, so that FIPS mode can swap the Node backend for host OpenSSL.

export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];
export const DEFAULT_KEY_ALGORITHM: KeyAlgorithm = 'ecdsa-p256';

export type KeyUsage = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'crlSign';
export type ExtendedKeyUsage = 'serverAuth' | 'clientAuth';

export interface KeyPair {
  algorithm: KeyAlgorithm;
  /** PKCS#8 PEM. Never log it. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

export interface DistinguishedName {
  commonName: string;
  organization?: string[];
}

export interface CertificateTemplate {
  subject: DistinguishedName;
  dnsNames?: string[];
  ipAddresses?: string[];
  isCA: boolean;
  /** Path length constraint for CAs; undefined means unconstrained. */
  pathLength?: number;
  keyUsage: KeyUsage[];
  extKeyUsage?: ExtendedKeyUsage[];
  notBefore: Date;
  notAfter: Date;
}

/** The CA that signs a certificate. */
export interface Issuer {
  certificatePem: string;
  privateKeyPem: string;
}

export interface CertificateInfo {
  subject: DistinguishedName;
  issuer: DistinguishedName;
  /** Raw subject and issuer strings, for display and chaining checks. */
  subjectString: string;
  issuerString: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  ipAddresses: string[];
  isCA: boolean;
  /** Upper-case colon-separated SHA-256 of the DER, as openssl prints it. */
  fingerprint256: string;
  publicKeyAlgorithm: string;
}

export interface CryptoBackend {
  readonly name: 'node' | 'openssl';

  generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair>;
  /** Public key (SPKI PEM) of a private key PEM. */
  publicKeyOf(privateKeyPem: string): Promise<string>;

  /** Self-signed when issuer is undefined (then subjectKey signs itself). */
  createCertificate(template: CertificateTemplate, subjectKey: KeyPair, issuer?: Issuer): Promise<string>;
  /** Cross-signs an existing certificate's subject and public key with another issuer (CA rotation). */
  crossSign(certificatePem: string, template: CertificateTemplate, issuer: Issuer): Promise<string>;
  createCsr(subject: DistinguishedName, key: KeyPair, dnsNames?: string[], ipAddresses?: string[]): Promise<string>;
  /** Signs a CSR after the caller has checked it; the template supplies lifetime, usages and SANs. */
  signCsr(csrPem: string, template: CertificateTemplate, issuer: Issuer): Promise<string>;
  /** Parses a CSR and verifies its self-signature. */
  parseCsr(csrPem: string): Promise<{ subject: DistinguishedName; dnsNames: string[]; ipAddresses: string[]; publicKeyPem: string }>;

  parseCertificate(certificatePem: string): CertificateInfo;
  /** True when certificatePem's signature verifies with issuerPem's key and the names chain. */
  verifyIssuedBy(certificatePem: string, issuerPem: string): Promise<boolean>;
  keyMatchesCertificate(privateKeyPem: string, certificatePem: string): Promise<boolean>;

  sha256(data: Buffer | string): Promise<Buffer>;
  hmacSha256(key: Buffer, data: Buffer | string): Promise<Buffer>;
  randomBytes(length: number): Promise<Buffer>;
  /** Signature over SHA-256 (ECDSA or RSA-PSS/PKCS#1 by key type). */
  sign(privateKeyPem: string, data: Buffer): Promise<Buffer>;
  verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean>;

  /** AES-256-GCM. Output is iv(12) | ciphertext | tag(16). */
  encrypt(key: Buffer, plaintext: Buffer, aad?: Buffer): Promise<Buffer>;
  decrypt(key: Buffer, sealed: Buffer, aad?: Buffer): Promise<Buffer>;
}

export class CryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CryptoError';
  }
}
