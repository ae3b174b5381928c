// Debug audit: a CryptoBackend wrapper that records which operation ran on which
// backend. It records names and outcomes only: never arguments or results, which
// hold keys, plaintexts and secrets.
import type {
  CertificateInfo,
  CertificateTemplate,
  CryptoBackend,
  DistinguishedName,
  Issuer,
  KeyAlgorithm,
  KeyPair,
} from './types.js';

export type CryptoOperation = Exclude<keyof CryptoBackend, 'name'>;

export interface CryptoAuditEntry {
  operation: CryptoOperation;
  backend: CryptoBackend['name'];
  ok: boolean;
  durationMs: number;
}

export class AuditingCryptoBackend implements CryptoBackend {
  readonly name: CryptoBackend['name'];
  private readonly recorded: CryptoAuditEntry[] = [];

  constructor(
    private readonly inner: CryptoBackend,
    private readonly sink?: (entry: CryptoAuditEntry) => void,
  ) {
    this.name = inner.name;
  }

  /** Everything recorded so far, oldest first. */
  get entries(): readonly CryptoAuditEntry[] {
    return this.recorded;
  }

  private record(operation: CryptoOperation, ok: boolean, started: number): void {
    const entry: CryptoAuditEntry = { operation, backend: this.inner.name, ok, durationMs: performance.now() - started };
    this.recorded.push(entry);
    this.sink?.(entry);
  }

  private async track<T>(operation: CryptoOperation, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.record(operation, true, started);
      return result;
    } catch (err) {
      this.record(operation, false, started);
      throw err;
    }
  }

  generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair> {
    return this.track('generateKeyPair', () => this.inner.generateKeyPair(algorithm));
  }
  publicKeyOf(privateKeyPem: string): Promise<string> {
    return this.track('publicKeyOf', () => this.inner.publicKeyOf(privateKeyPem));
  }
  createCertificate(template: CertificateTemplate, subjectKey: KeyPair, issuer?: Issuer): Promise<string> {
    return this.track('createCertificate', () => this.inner.createCertificate(template, subjectKey, issuer));
  }
  crossSign(certificatePem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    return this.track('crossSign', () => this.inner.crossSign(certificatePem, template, issuer));
  }
  createCsr(subject: DistinguishedName, key: KeyPair, dnsNames?: string[], ipAddresses?: string[]): Promise<string> {
    return this.track('createCsr', () => this.inner.createCsr(subject, key, dnsNames, ipAddresses));
  }
  signCsr(csrPem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    return this.track('signCsr', () => this.inner.signCsr(csrPem, template, issuer));
  }
  parseCsr(csrPem: string): Promise<{ subject: DistinguishedName; dnsNames: string[]; ipAddresses: string[]; publicKeyPem: string }> {
    return this.track('parseCsr', () => this.inner.parseCsr(csrPem));
  }
  parseCertificate(certificatePem: string): CertificateInfo {
    const started = performance.now();
    try {
      const info = this.inner.parseCertificate(certificatePem);
      this.record('parseCertificate', true, started);
      return info;
    } catch (err) {
      this.record('parseCertificate', false, started);
      throw err;
    }
  }
  verifyIssuedBy(certificatePem: string, issuerPem: string): Promise<boolean> {
    return this.track('verifyIssuedBy', () => this.inner.verifyIssuedBy(certificatePem, issuerPem));
  }
  keyMatchesCertificate(privateKeyPem: string, certificatePem: string): Promise<boolean> {
    return this.track('keyMatchesCertificate', () => this.inner.keyMatchesCertificate(privateKeyPem, certificatePem));
  }
  sha256(data: Buffer | string): Promise<Buffer> {
    return this.track('sha256', () => this.inner.sha256(data));
  }
  hmacSha256(key: Buffer, data: Buffer | string): Promise<Buffer> {
    return this.track('hmacSha256', () => this.inner.hmacSha256(key, data));
  }
  randomBytes(length: number): Promise<Buffer> {
    return this.track('randomBytes', () => this.inner.randomBytes(length));
  }
  sign(privateKeyPem: string, data: Buffer): Promise<Buffer> {
    return this.track('sign', () => this.inner.sign(privateKeyPem, data));
  }
  verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean> {
    return this.track('verify', () => this.inner.verify(publicKeyPem, data, signature));
  }
  encrypt(key: Buffer, plaintext: Buffer, aad?: Buffer): Promise<Buffer> {
    return this.track('encrypt', () => this.inner.encrypt(key, plaintext, aad));
  }
  decrypt(key: Buffer, sealed: Buffer, aad?: Buffer): Promise<Buffer> {
    return this.track('decrypt', () => this.inner.decrypt(key, sealed, aad));
  }
}

/** Wraps a backend for auditing when K8S_CRYPTO_AUDIT=1 (or always when `enabled` is true). */
export function withCryptoAudit(
  backend: CryptoBackend,
  sink?: (entry: CryptoAuditEntry) => void,
  enabled: boolean = process.env.K8S_CRYPTO_AUDIT === '1',
): CryptoBackend {
  return enabled ? new AuditingCryptoBackend(backend, sink) : backend;
}
