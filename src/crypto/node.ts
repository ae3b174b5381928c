// Node backend: @peculiar/x509 over WebCrypto for X.509, node:crypto for the rest.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import nodeCrypto, { webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import {
  CertificateInfo,
  CertificateTemplate,
  CryptoBackend,
  CryptoError,
  DistinguishedName,
  ExtendedKeyUsage,
  Issuer,
  KeyAlgorithm,
  KeyPair,
  KeyUsage,
} from './types.js';

type CryptoKey = webcrypto.CryptoKey;
type EcdsaParams = webcrypto.EcdsaParams;
type Algorithm = webcrypto.Algorithm;
type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
type EcKeyImportParams = webcrypto.EcKeyImportParams;

const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const KEY_USAGE_FLAGS: Record<KeyUsage, number> = {
  digitalSignature: x509.KeyUsageFlags.digitalSignature,
  keyEncipherment: x509.KeyUsageFlags.keyEncipherment,
  keyCertSign: x509.KeyUsageFlags.keyCertSign,
  crlSign: x509.KeyUsageFlags.cRLSign,
};
const EKU_OIDS: Record<ExtendedKeyUsage, string> = {
  serverAuth: x509.ExtendedKeyUsage.serverAuth,
  clientAuth: x509.ExtendedKeyUsage.clientAuth,
};

type Algo = RsaHashedImportParams | EcKeyImportParams;

function importParams(algorithm: KeyAlgorithm): Algo & { signing: Algorithm | EcdsaParams } {
  switch (algorithm) {
    case 'ecdsa-p256':
      return { name: 'ECDSA', namedCurve: 'P-256', signing: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams };
    case 'ecdsa-p384':
      return { name: 'ECDSA', namedCurve: 'P-384', signing: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams };
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', signing: { name: 'RSASSA-PKCS1-v1_5' } };
  }
}

/** Detects a key's algorithm from its PEM. */
export function keyAlgorithmOf(keyPem: string): KeyAlgorithm {
  const key = keyPem.includes('PRIVATE KEY') ? nodeCrypto.createPrivateKey(keyPem) : nodeCrypto.createPublicKey(keyPem);
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (details.namedCurve === 'secp384r1') return 'ecdsa-p384';
    throw new CryptoError(`unsupported EC curve ${String(details.namedCurve)}; use P-256 or P-384`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits === 2048) return 'rsa-2048';
    if (bits === 3072) return 'rsa-3072';
    if (bits === 4096) return 'rsa-4096';
    throw new CryptoError(`unsupported RSA key size ${bits}; use 2048, 3072 or 4096 bits`);
  }
  throw new CryptoError(`unsupported key type ${String(key.asymmetricKeyType)}; use ECDSA (P-256/P-384) or RSA`);
}

function pemBody(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const buf = Buffer.from(b64, 'base64');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

/** Converts any private key PEM (PKCS#1, SEC1 or PKCS#8) to PKCS#8. */
function toPkcs8(privateKeyPem: string): string {
  return nodeCrypto.createPrivateKey(privateKeyPem).export({ format: 'pem', type: 'pkcs8' }).toString();
}

async function importPrivate(privateKeyPem: string): Promise<{ key: CryptoKey; algorithm: KeyAlgorithm }> {
  const algorithm = keyAlgorithmOf(privateKeyPem);
  const params = importParams(algorithm);
  const key = await subtle.importKey('pkcs8', pemBody(toPkcs8(privateKeyPem)), params, false, ['sign']);
  return { key, algorithm };
}

async function importPublic(publicKeyPem: string): Promise<CryptoKey> {
  const algorithm = keyAlgorithmOf(publicKeyPem);
  return subtle.importKey('spki', pemBody(publicKeyPem), importParams(algorithm), true, ['verify']);
}

function escapeDnValue(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

export function dnToString(dn: DistinguishedName): string {
  const parts = (dn.organization ?? []).map((o) => `O=${escapeDnValue(o)}`);
  parts.push(`CN=${escapeDnValue(dn.commonName)}`);
  return parts.join(', ');
}

function parseDn(text: string): DistinguishedName {
  // node's X509Certificate prints one "KEY=value" per line.
  const organization: string[] = [];
  let commonName = '';
  for (const line of text.split('\n')) {
    const idx = line.indexOf('=');
    if (idx < 0) continue;
    const key = line.slice(0, idx).trim();
    const value = line.slice(idx + 1).trim();
    if (key === 'CN') commonName = value;
    if (key === 'O') organization.push(value);
  }
  return organization.length ? { commonName, organization } : { commonName };
}

function serial(): string {
  const bytes = nodeCrypto.randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes.toString('hex');
}

function sanExtension(dnsNames: string[] = [], ipAddresses: string[] = []): x509.SubjectAlternativeNameExtension | undefined {
  const names: x509.JsonGeneralName[] = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  return names.length ? new x509.SubjectAlternativeNameExtension(names) : undefined;
}

async function extensionsFor(template: CertificateTemplate, subjectPublic: CryptoKey, issuerCert?: x509.X509Certificate): Promise<x509.Extension[]> {
  const exts: x509.Extension[] = [
    new x509.BasicConstraintsExtension(template.isCA, template.isCA ? template.pathLength : undefined, true),
    new x509.KeyUsagesExtension(template.keyUsage.reduce((acc, u) => acc | KEY_USAGE_FLAGS[u], 0), true),
  ];
  if (template.extKeyUsage?.length) {
    exts.push(new x509.ExtendedKeyUsageExtension(template.extKeyUsage.map((u) => EKU_OIDS[u]), false));
  }
  const san = sanExtension(template.dnsNames, template.ipAddresses);
  if (san) exts.push(san);
  exts.push(await x509.SubjectKeyIdentifierExtension.create(subjectPublic));
  if (issuerCert) {
    exts.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert, false));
  } else {
    exts.push(await x509.AuthorityKeyIdentifierExtension.create(subjectPublic, false));
  }
  return exts;
}

function checkTemplate(template: CertificateTemplate): void {
  for (const ip of template.ipAddresses ?? []) {
    if (!isIP(ip)) throw new CryptoError(`invalid IP address SAN "${ip}"`);
  }
  if (!(template.notAfter > template.notBefore)) throw new CryptoError('certificate notAfter must be later than notBefore');
}

export class NodeCryptoBackend implements CryptoBackend {
  readonly name = 'node' as const;

  async generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair> {
    let pair: nodeCrypto.KeyPairKeyObjectResult;
    switch (algorithm) {
      case 'ecdsa-p256':
        pair = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
        break;
      case 'ecdsa-p384':
        pair = nodeCrypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' });
        break;
      default: {
        const bits = Number(algorithm.slice(4));
        pair = await new Promise((resolve, reject) =>
          nodeCrypto.generateKeyPair('rsa', { modulusLength: bits }, (err, publicKey, privateKey) =>
            err ? reject(err) : resolve({ publicKey, privateKey }),
          ),
        );
      }
    }
    return {
      algorithm,
      privateKeyPem: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      publicKeyPem: pair.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    };
  }

  async publicKeyOf(privateKeyPem: string): Promise<string> {
    return nodeCrypto.createPublicKey(privateKeyPem).export({ format: 'pem', type: 'spki' }).toString();
  }

  private async issue(template: CertificateTemplate, subjectPublicPem: string, signerKeyPem: string, issuerPem?: string): Promise<string> {
    checkTemplate(template);
    const subjectPublic = await importPublic(subjectPublicPem);
    const { key: signingKey, algorithm } = await importPrivate(signerKeyPem);
    const issuerCert = issuerPem ? new x509.X509Certificate(issuerPem) : undefined;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: dnToString(template.subject),
      // The issuer DN is copied as encoded (subjectName), not re-encoded from its string form:
      // Go compares the raw bytes, and a CA made elsewhere (openssl: UTF8String) must match.
      issuer: issuerCert ? issuerCert.subjectName : dnToString(template.subject),
      notBefore: template.notBefore,
      notAfter: template.notAfter,
      publicKey: subjectPublic,
      signingKey,
      signingAlgorithm: importParams(algorithm).signing,
      extensions: await extensionsFor(template, subjectPublic, issuerCert),
    });
    return cert.toString('pem') + '\n';
  }

  async createCertificate(template: CertificateTemplate, subjectKey: KeyPair, issuer?: Issuer): Promise<string> {
    if (!issuer) return this.issue(template, subjectKey.publicKeyPem, subjectKey.privateKeyPem);
    return this.issue(template, subjectKey.publicKeyPem, issuer.privateKeyPem, issuer.certificatePem);
  }

  async crossSign(certificatePem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    const publicKeyPem = new X509Certificate(certificatePem).publicKey.export({ format: 'pem', type: 'spki' }).toString();
    return this.issue(template, publicKeyPem, issuer.privateKeyPem, issuer.certificatePem);
  }

  async createCsr(subject: DistinguishedName, key: KeyPair, dnsNames: string[] = [], ipAddresses: string[] = []): Promise<string> {
    const { key: privateKey, algorithm } = await importPrivate(key.privateKeyPem);
    const publicKey = await importPublic(key.publicKeyPem);
    const san = sanExtension(dnsNames, ipAddresses);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: dnToString(subject),
      keys: { privateKey, publicKey },
      signingAlgorithm: importParams(algorithm).signing,
      extensions: san ? [san] : [],
    });
    return csr.toString('pem') + '\n';
  }

  async parseCsr(csrPem: string): Promise<{ subject: DistinguishedName; dnsNames: string[]; ipAddresses: string[]; publicKeyPem: string }> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new CryptoError(`not a PEM certificate request: ${(err as Error).message}`);
    }
    if (!(await csr.verify())) throw new CryptoError('certificate request signature does not verify');
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    const names: x509.JsonGeneralName[] = san?.names.toJSON() ?? [];
    const publicKeyPem = Buffer.from(csr.publicKey.rawData).toString('base64').replace(/(.{64})/g, '$1\n');
    return {
      subject: parseDnFromPeculiar(csr.subject),
      dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
      ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
      publicKeyPem: `-----BEGIN PUBLIC KEY-----\n${publicKeyPem.trim()}\n-----END PUBLIC KEY-----\n`,
    };
  }

  async signCsr(csrPem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    const parsed = await this.parseCsr(csrPem);
    return this.issue(template, parsed.publicKeyPem, issuer.privateKeyPem, issuer.certificatePem);
  }

  parseCertificate(certificatePem: string): CertificateInfo {
    return parseCertificateInfo(certificatePem);
  }

  async verifyIssuedBy(certificatePem: string, issuerPem: string): Promise<boolean> {
    try {
      const cert = new X509Certificate(certificatePem);
      const issuer = new X509Certificate(issuerPem);
      return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
    } catch {
      return false;
    }
  }

  async keyMatchesCertificate(privateKeyPem: string, certificatePem: string): Promise<boolean> {
    try {
      return new X509Certificate(certificatePem).checkPrivateKey(nodeCrypto.createPrivateKey(privateKeyPem));
    } catch {
      return false;
    }
  }

  async sha256(data: Buffer | string): Promise<Buffer> {
    return nodeCrypto.createHash('sha256').update(data).digest();
  }

  async hmacSha256(key: Buffer, data: Buffer | string): Promise<Buffer> {
    return nodeCrypto.createHmac('sha256', key).update(data).digest();
  }

  async randomBytes(length: number): Promise<Buffer> {
    return nodeCrypto.randomBytes(length);
  }

  async sign(privateKeyPem: string, data: Buffer): Promise<Buffer> {
    return nodeCrypto.sign('sha256', data, privateKeyPem);
  }

  async verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean> {
    try {
      return nodeCrypto.verify('sha256', data, publicKeyPem, signature);
    } catch {
      return false;
    }
  }

  async encrypt(key: Buffer, plaintext: Buffer, aad?: Buffer): Promise<Buffer> {
    if (key.length !== 32) throw new CryptoError('AES-256-GCM needs a 32-byte key');
    const iv = nodeCrypto.randomBytes(12);
    const cipher = nodeCrypto.createCipheriv('aes-256-gcm', key, iv);
    if (aad) cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]);
  }

  async decrypt(key: Buffer, sealed: Buffer, aad?: Buffer): Promise<Buffer> {
    if (key.length !== 32) throw new CryptoError('AES-256-GCM needs a 32-byte key');
    if (sealed.length < 28) throw new CryptoError('ciphertext too short');
    const decipher = nodeCrypto.createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    if (aad) decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw new CryptoError('ciphertext failed authentication (wrong key or tampered data)');
    }
  }
}

function parseDnFromPeculiar(subject: string): DistinguishedName {
  const name = new x509.Name(subject);
  const cn = name.getField('CN')[0] ?? '';
  const org = name.getField('O');
  return org.length ? { commonName: cn, organization: org } : { commonName: cn };
}

/** Parses a PEM certificate with node:crypto (no cryptographic operation involved). */
export function parseCertificateInfo(certificatePem: string): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
  } catch (err) {
    throw new CryptoError(`not a PEM certificate: ${(err as Error).message}`);
  }
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    if (entry.startsWith('DNS:')) dnsNames.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ipAddresses.push(entry.slice(11).toLowerCase());
  }
  return {
    subject: parseDn(cert.subject),
    issuer: parseDn(cert.issuer),
    subjectString: cert.subject.replace(/\n/g, ', '),
    issuerString: cert.issuer.replace(/\n/g, ', '),
    serialNumber: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dnsNames,
    ipAddresses,
    isCA: cert.ca,
    fingerprint256: cert.fingerprint256,
    publicKeyAlgorithm: String(cert.publicKey.asymmetricKeyType),
  };
}
