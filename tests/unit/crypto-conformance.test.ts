// The same behaviour, checked the same way, for every CryptoBackend: Node, host OpenSSL,
// and host OpenSSL in FIPS mode on the test-built provider (when it is built). Results
// are checked with an independent tool, the host `openssl` command.
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locateFipsProvider, writeNodeFipsRuntime } from '../../src/crypto/fips.js';
import { NodeCryptoBackend, keyAlgorithmOf } from '../../src/crypto/node.js';
import { OpenSSLCryptoBackend } from '../../src/crypto/openssl.js';
import {
  CryptoError,
  type CertificateTemplate,
  type CryptoBackend,
  type Issuer,
  type KeyAlgorithm,
  type KeyPair,
} from '../../src/crypto/types.js';
import { PINNED_NODE, builtProvider } from '../fips/provider.js';

const provider = builtProvider();
let scratch: string;

interface BackendCase {
  label: string;
  make: () => Promise<CryptoBackend>;
}

const backends: BackendCase[] = [
  { label: 'node', make: async () => new NodeCryptoBackend() },
  { label: 'openssl', make: async () => new OpenSSLCryptoBackend() },
];
if (provider) {
  backends.push({
    label: 'openssl (FIPS provider)',
    make: async () => {
      const location = await locateFipsProvider({ binary: 'openssl', env: provider.env });
      const runtime = await writeNodeFipsRuntime(location, await mkdtemp(path.join(scratch, 'runtime-')));
      return new OpenSSLCryptoBackend({ fips: true, env: provider.env, nodeRuntime: runtime, nodeBinary: PINNED_NODE });
    },
  });
} else {
  // Visible in the test list, so a missing provider is never mistaken for a pass.
  it.skip('openssl (FIPS provider): provider not built, run tests/fips/build-provider.sh', () => {});
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'crypto-conformance-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The host openssl with its default configuration: the independent checker. */
async function hostOpenssl(args: string[], input?: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const env = { ...process.env, OPENSSL_CONF: undefined, OPENSSL_MODULES: undefined };
  const r = await execa('openssl', args, { input: input ?? '', reject: false, env, extendEnv: false });
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}

async function writeFiles(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(scratch, 'check-'));
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return dir;
}

function seconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

const NOW = seconds(new Date());
const inDays = (days: number): Date => new Date(NOW.getTime() + days * 86_400_000);

function caTemplate(commonName: string, pathLength?: number): CertificateTemplate {
  const t: CertificateTemplate = {
    subject: { commonName },
    isCA: true,
    keyUsage: ['digitalSignature', 'keyCertSign', 'crlSign'],
    notBefore: inDays(-1),
    notAfter: inDays(3650),
  };
  if (pathLength !== undefined) t.pathLength = pathLength;
  return t;
}

function serverTemplate(): CertificateTemplate {
  return {
    subject: { commonName: 'kube-apiserver', organization: ['system:masters', 'k8s/ts'] },
    dnsNames: ['kubernetes', 'kubernetes.default.svc.cluster.local', '*.node.example'],
    ipAddresses: ['10.152.183.1', '127.0.0.1', '::1'],
    isCA: false,
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    notBefore: inDays(-1),
    notAfter: inDays(365),
  };
}

async function extensions(certPem: string): Promise<string> {
  const r = await hostOpenssl(
    ['x509', '-noout', '-ext', 'basicConstraints,keyUsage,extendedKeyUsage,subjectAltName,subjectKeyIdentifier,authorityKeyIdentifier'],
    certPem,
  );
  expect(r.exitCode).toBe(0);
  return r.stdout;
}

function keyIdentifier(ext: string, label: 'Subject Key Identifier' | 'Authority Key Identifier'): string | undefined {
  const lines = ext.split('\n');
  const at = lines.findIndex((l) => l.includes(`X509v3 ${label}`));
  return at < 0 ? undefined : lines[at + 1]!.trim().replace(/^keyid:/, '');
}

describe.each(backends)('CryptoBackend conformance: $label', ({ make }) => {
  let backend: CryptoBackend;
  let root: Issuer & { key: KeyPair };
  let intermediate: Issuer & { key: KeyPair };

  beforeAll(async () => {
    backend = await make();
    const rootKey = await backend.generateKeyPair('ecdsa-p384');
    const rootPem = await backend.createCertificate(caTemplate('k8s-ts root CA', 1), rootKey);
    root = { certificatePem: rootPem, privateKeyPem: rootKey.privateKeyPem, key: rootKey };
    const interKey = await backend.generateKeyPair('ecdsa-p256');
    const interPem = await backend.createCertificate(caTemplate('k8s-ts intermediate CA', 0), interKey, root);
    intermediate = { certificatePem: interPem, privateKeyPem: interKey.privateKeyPem, key: interKey };
  });

  it.each<KeyAlgorithm>(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'])('generates %s keys as PKCS#8 with a matching SPKI', async (algorithm) => {
    const key = await backend.generateKeyPair(algorithm);
    expect(key.algorithm).toBe(algorithm);
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(key.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(keyAlgorithmOf(key.privateKeyPem)).toBe(algorithm);
    expect((await backend.publicKeyOf(key.privateKeyPem)).trim()).toBe(key.publicKeyPem.trim());
    const check = await hostOpenssl(['pkey', '-noout', '-check'], key.privateKeyPem);
    expect(check.stdout + check.stderr).toMatch(/Key is valid/);
  });

  it('builds a root → intermediate → leaf chain that `openssl verify` accepts', async () => {
    const leafKey = await backend.generateKeyPair('rsa-2048');
    const leaf = await backend.createCertificate(serverTemplate(), leafKey, intermediate);
    const dir = await writeFiles({ 'root.pem': root.certificatePem, 'inter.pem': intermediate.certificatePem, 'leaf.pem': leaf });
    const verified = await hostOpenssl(['verify', '-purpose', 'sslserver', '-CAfile', `${dir}/root.pem`, '-untrusted', `${dir}/inter.pem`, `${dir}/leaf.pem`]);
    expect(verified.stdout + verified.stderr).toContain(`${dir}/leaf.pem: OK`);
    expect(verified.exitCode).toBe(0);
    const asClient = await hostOpenssl(['verify', '-purpose', 'sslclient', '-CAfile', `${dir}/root.pem`, '-untrusted', `${dir}/inter.pem`, `${dir}/leaf.pem`]);
    expect(asClient.exitCode).toBe(0);

    expect(await backend.verifyIssuedBy(leaf, intermediate.certificatePem)).toBe(true);
    expect(await backend.verifyIssuedBy(intermediate.certificatePem, root.certificatePem)).toBe(true);
    expect(await backend.verifyIssuedBy(root.certificatePem, root.certificatePem)).toBe(true);
    expect(await backend.verifyIssuedBy(leaf, root.certificatePem)).toBe(false);
    expect(await backend.keyMatchesCertificate(leafKey.privateKeyPem, leaf)).toBe(true);
    expect(await backend.keyMatchesCertificate(intermediate.privateKeyPem, leaf)).toBe(false);
  });

  it('writes the template into the certificate: names, SANs, validity, usages, key identifiers, serial', async () => {
    const leafKey = await backend.generateKeyPair('ecdsa-p256');
    const template = serverTemplate();
    const leaf = await backend.createCertificate(template, leafKey, intermediate);
    const info = backend.parseCertificate(leaf);
    expect(info.subject).toEqual({ commonName: 'kube-apiserver', organization: ['system:masters', 'k8s/ts'] });
    expect(info.issuer).toEqual({ commonName: 'k8s-ts intermediate CA' });
    expect(info.dnsNames).toEqual(template.dnsNames);
    expect(info.ipAddresses.map((ip) => (ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip))).toEqual(template.ipAddresses);
    expect(info.isCA).toBe(false);
    expect(info.notBefore.getTime()).toBe(template.notBefore.getTime());
    expect(info.notAfter.getTime()).toBe(template.notAfter.getTime());
    // 128 random bits, positive: at most 16 bytes of hex, top bit clear.
    expect(info.serialNumber).toMatch(/^[0-9A-F]{30,32}$/i);
    expect(parseInt(info.serialNumber.padStart(32, '0').slice(0, 2), 16)).toBeLessThan(0x80);

    const ext = await extensions(leaf);
    expect(ext).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(ext).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
    expect(ext).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(ext).toMatch(/DNS:kubernetes, DNS:kubernetes.default.svc.cluster.local, DNS:\*\.node\.example, IP Address:10.152.183.1, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1/);
    const interExt = await extensions(intermediate.certificatePem);
    expect(interExt).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(interExt).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    expect(keyIdentifier(ext, 'Authority Key Identifier')).toBe(keyIdentifier(interExt, 'Subject Key Identifier'));
    expect(keyIdentifier(ext, 'Subject Key Identifier')).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);

    const rootInfo = backend.parseCertificate(root.certificatePem);
    expect(rootInfo.isCA).toBe(true);
    expect(rootInfo.subjectString).toBe(rootInfo.issuerString);
    const rootExt = await extensions(root.certificatePem);
    expect(keyIdentifier(rootExt, 'Authority Key Identifier')).toBe(keyIdentifier(rootExt, 'Subject Key Identifier'));
  });

  it('signs with SHA-384 under a P-384 CA and SHA-256 under a P-256 one', async () => {
    const sigAlg = async (pem: string): Promise<string> =>
      /Signature Algorithm: (\S+)/.exec((await hostOpenssl(['x509', '-noout', '-text'], pem)).stdout)![1]!;
    expect(await sigAlg(intermediate.certificatePem)).toBe('ecdsa-with-SHA384');
    const leafKey = await backend.generateKeyPair('ecdsa-p256');
    expect(await sigAlg(await backend.createCertificate(serverTemplate(), leafKey, intermediate))).toBe('ecdsa-with-SHA256');
  });

  it('cross-signs a new root with the old one so old trust reaches new leaves', async () => {
    const newKey = await backend.generateKeyPair('ecdsa-p256');
    const newRoot = await backend.createCertificate(caTemplate('k8s-ts root CA 2'), newKey);
    const cross = await backend.crossSign(newRoot, { ...caTemplate('k8s-ts root CA 2'), notAfter: inDays(400) }, root);
    const crossInfo = backend.parseCertificate(cross);
    expect(crossInfo.subject).toEqual({ commonName: 'k8s-ts root CA 2' });
    expect(crossInfo.issuer).toEqual({ commonName: 'k8s-ts root CA' });
    expect(crossInfo.notAfter.getTime()).toBe(inDays(400).getTime());
    expect(await backend.verifyIssuedBy(cross, root.certificatePem)).toBe(true);
    const pub = async (pem: string): Promise<string> => (await hostOpenssl(['x509', '-noout', '-pubkey'], pem)).stdout;
    expect(await pub(cross)).toBe(await pub(newRoot));
    expect(keyIdentifier(await extensions(cross), 'Subject Key Identifier')).toBe(keyIdentifier(await extensions(newRoot), 'Subject Key Identifier'));

    const leafKey = await backend.generateKeyPair('ecdsa-p256');
    const leaf = await backend.createCertificate(serverTemplate(), leafKey, { certificatePem: newRoot, privateKeyPem: newKey.privateKeyPem });
    const dir = await writeFiles({ 'old.pem': root.certificatePem, 'cross.pem': cross, 'leaf.pem': leaf });
    const r = await hostOpenssl(['verify', '-CAfile', `${dir}/old.pem`, '-untrusted', `${dir}/cross.pem`, `${dir}/leaf.pem`]);
    expect(r.exitCode).toBe(0);
  });

  it('round-trips a CSR: create, verify with openssl, parse, sign', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const csr = await backend.createCsr({ commonName: 'system:node:worker-1', organization: ['system:nodes'] }, key, ['worker-1'], ['192.168.0.7', 'fd00::7']);
    const checked = await hostOpenssl(['req', '-noout', '-verify'], csr);
    expect(checked.stderr).toMatch(/verify OK/);

    const parsed = await backend.parseCsr(csr);
    expect(parsed.subject).toEqual({ commonName: 'system:node:worker-1', organization: ['system:nodes'] });
    expect(parsed.dnsNames).toEqual(['worker-1']);
    expect(parsed.ipAddresses).toEqual(['192.168.0.7', 'fd00::7']);
    expect(parsed.publicKeyPem.trim()).toBe(key.publicKeyPem.trim());

    const template: CertificateTemplate = {
      subject: parsed.subject,
      dnsNames: parsed.dnsNames,
      ipAddresses: parsed.ipAddresses,
      isCA: false,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['clientAuth'],
      notBefore: inDays(0),
      notAfter: inDays(30),
    };
    const cert = await backend.signCsr(csr, template, intermediate);
    expect(await backend.verifyIssuedBy(cert, intermediate.certificatePem)).toBe(true);
    expect(await backend.keyMatchesCertificate(key.privateKeyPem, cert)).toBe(true);
    expect(backend.parseCertificate(cert).subject).toEqual(parsed.subject);
  });

  it('rejects a CSR whose self-signature does not verify', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const csr = await backend.createCsr({ commonName: 'tampered' }, key);
    const der = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 4]! ^= 0x01; // inside the signature value
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(backend.parseCsr(tampered)).rejects.toThrow(CryptoError);
    await expect(backend.signCsr(tampered, serverTemplate(), intermediate)).rejects.toThrow(CryptoError);
  });

  it.each<KeyAlgorithm>(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'])('signs and verifies with %s; tampering is detected', async (algorithm) => {
    const key = await backend.generateKeyPair(algorithm);
    const data = Buffer.from('kubeconfig token 42');
    const signature = await backend.sign(key.privateKeyPem, data);
    expect(await backend.verify(key.publicKeyPem, data, signature)).toBe(true);
    expect(await backend.verify(key.publicKeyPem, Buffer.from('kubeconfig token 43'), signature)).toBe(false);
    const bent = Buffer.from(signature);
    bent[bent.length - 1]! ^= 0x01;
    expect(await backend.verify(key.publicKeyPem, data, bent)).toBe(false);
    // The host openssl agrees.
    const dir = await writeFiles({ 'pub.pem': key.publicKeyPem });
    await writeFile(`${dir}/sig`, signature);
    const r = await execa('openssl', ['dgst', '-sha256', '-verify', `${dir}/pub.pem`, '-signature', `${dir}/sig`], { input: data, reject: false });
    expect(r.stdout).toContain('Verified OK');
  });

  it('hashes, MACs and draws random bytes', async () => {
    expect((await backend.sha256('abc')).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // RFC 4231 test case 2.
    expect((await backend.hmacSha256(Buffer.from('Jefe'), 'what do ya want for nothing?')).toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
    const a = await backend.randomBytes(32);
    const b = await backend.randomBytes(32);
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });

  it('encrypts with AES-256-GCM as iv | ciphertext | tag, and detects tampering', async () => {
    const key = await backend.randomBytes(32);
    const plaintext = Buffer.from('etcd encryption at rest');
    const aad = Buffer.from('/registry/secrets/default/token');
    const sealed = await backend.encrypt(key, plaintext, aad);
    expect(sealed).toHaveLength(12 + plaintext.length + 16);
    expect((await backend.decrypt(key, sealed, aad)).equals(plaintext)).toBe(true);
    expect((await backend.decrypt(key, await backend.encrypt(key, plaintext))).equals(plaintext)).toBe(true);

    const flipped = Buffer.from(sealed);
    flipped[14]! ^= 0x01;
    await expect(backend.decrypt(key, flipped, aad)).rejects.toThrow(/authentication/);
    await expect(backend.decrypt(key, sealed, Buffer.from('other'))).rejects.toThrow(/authentication/);
    await expect(backend.decrypt(await backend.randomBytes(32), sealed, aad)).rejects.toThrow(/authentication/);
    await expect(backend.encrypt(Buffer.alloc(16), plaintext)).rejects.toThrow(/32-byte key/);
  });

  it('interoperates with the Node backend: certificates, signatures and ciphertexts cross over', async () => {
    const node = new NodeCryptoBackend();
    const key = await node.generateKeyPair('ecdsa-p256');
    const leafByNode = await node.createCertificate(serverTemplate(), key, intermediate);
    expect(await backend.verifyIssuedBy(leafByNode, intermediate.certificatePem)).toBe(true);
    const csrByNode = await node.createCsr({ commonName: 'from-node' }, key, ['a.example']);
    expect((await backend.parseCsr(csrByNode)).dnsNames).toEqual(['a.example']);

    const data = Buffer.from('cross');
    expect(await node.verify(key.publicKeyPem, data, await backend.sign(key.privateKeyPem, data))).toBe(true);
    expect(await backend.verify(key.publicKeyPem, data, await node.sign(key.privateKeyPem, data))).toBe(true);

    const aes = await backend.randomBytes(32);
    expect((await node.decrypt(aes, await backend.encrypt(aes, data))).equals(data)).toBe(true);
    expect((await backend.decrypt(aes, await node.encrypt(aes, data))).equals(data)).toBe(true);
  });
});
