// The OpenSSL backend's own duties, beyond the shared conformance cases: secrets stay off
// the command line and out of lingering files, failures are typed and say what to do,
// and OpenSSL 3.0's exit-0-on-failure quirks do not slip through.
import { execa } from 'execa';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FipsUnavailableError } from '../../src/crypto/fips.js';
import { OpenSSLCryptoBackend, OpenSSLNotFoundError } from '../../src/crypto/openssl.js';
import { CryptoError, type CertificateTemplate } from '../../src/crypto/types.js';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'crypto-openssl-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const now = Date.now();
const caTemplate: CertificateTemplate = {
  subject: { commonName: 'test CA' },
  isCA: true,
  keyUsage: ['keyCertSign', 'digitalSignature'],
  notBefore: new Date(now),
  notAfter: new Date(now + 86_400_000),
};
const leafTemplate: CertificateTemplate = {
  subject: { commonName: 'leaf' },
  dnsNames: ['leaf.example'],
  isCA: false,
  keyUsage: ['digitalSignature'],
  extKeyUsage: ['serverAuth'],
  notBefore: new Date(now),
  notAfter: new Date(now + 86_400_000),
};

describe('secret handling', () => {
  let log: string;
  let tmpDir: string;
  let backend: OpenSSLCryptoBackend;

  beforeAll(async () => {
    log = path.join(scratch, 'calls.log');
    tmpDir = await mkdtemp(path.join(scratch, 'tmp-'));
    // Stands in for openssl: records argv and the modes of key files and their directory, then runs the real one.
    const wrapper = path.join(scratch, 'openssl-spy');
    await writeFile(
      wrapper,
      [
        '#!/bin/sh',
        `printf 'ARGV %s\\n' "$*" >> '${log}'`,
        'for a in "$@"; do case "$a" in *.key) ' +
          `printf 'MODE %s %s DIR %s\\n' "$a" "$(stat -c %a "$a")" "$(stat -c %a "$(dirname "$(readlink -f "$a")")")" >> '${log}';; esac; done`,
        'exec openssl "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    backend = new OpenSSLCryptoBackend({ binary: wrapper, tmpDir });
  });

  it('never puts key material on the command line, keeps key files 0600 in a 0700 directory, and removes them', async () => {
    const caKey = await backend.generateKeyPair('ecdsa-p256');
    const ca = await backend.createCertificate(caTemplate, caKey);
    const issuer = { certificatePem: ca, privateKeyPem: caKey.privateKeyPem };
    const leafKey = await backend.generateKeyPair('rsa-2048');
    await backend.createCertificate(leafTemplate, leafKey, issuer);
    const csr = await backend.createCsr({ commonName: 'csr' }, leafKey, ['a.example']);
    await backend.signCsr(csr, leafTemplate, issuer);
    await backend.sign(leafKey.privateKeyPem, Buffer.from('m'));
    await backend.keyMatchesCertificate(caKey.privateKeyPem, ca);
    const secret = await backend.randomBytes(32);
    await backend.hmacSha256(secret, 'token');
    await backend.decrypt(secret, await backend.encrypt(secret, Buffer.from('s')));

    const calls = await readFile(log, 'utf8');
    expect(calls).toMatch(/^ARGV req -new -newkey EC .*-keyout - /m); // generated keys come back on stdout, not through a file
    const keyBodies = [caKey, leafKey].flatMap((k) => k.privateKeyPem.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')));
    for (const body of keyBodies) expect(calls).not.toContain(body);
    expect(calls).not.toContain(secret.toString('hex'));
    expect(calls).not.toContain('PRIVATE KEY');
    const modes = calls.split('\n').filter((l) => l.startsWith('MODE '));
    expect(modes.length).toBeGreaterThanOrEqual(5);
    for (const line of modes) expect(line).toMatch(/\.key 600 DIR 700$/);
    expect(await readdir(tmpDir)).toEqual([]);
  });

  it('removes its temporary directory when a command fails too', async () => {
    const caKey = await backend.generateKeyPair('ecdsa-p256');
    const issuer = { certificatePem: await backend.createCertificate(caTemplate, caKey), privateKeyPem: caKey.privateKeyPem };
    const leaf = await backend.createCertificate(leafTemplate, await backend.generateKeyPair('ecdsa-p256'), issuer);
    await expect(backend.crossSign(leaf, leafTemplate, issuer)).rejects.toThrow(CryptoError); // fails inside `openssl ca`
    expect(await readdir(tmpDir)).toEqual([]);
  });
});

describe('failures', () => {
  const backend = new OpenSSLCryptoBackend();

  it('names a missing openssl binary', async () => {
    await expect(new OpenSSLCryptoBackend({ binary: '/nonexistent/openssl' }).sha256('x')).rejects.toThrow(OpenSSLNotFoundError);
    await expect(new OpenSSLCryptoBackend({ binary: '/nonexistent/openssl' }).sha256('x')).rejects.toThrow(/install the openssl package/);
  });

  // `openssl ca -ss_cert` prints "Signature did not match the certificate" and exits 0; the
  // backend notices the missing output.
  it('cross-signs only self-signed certificates, and says so', async () => {
    const caKey = await backend.generateKeyPair('ecdsa-p256');
    const ca = await backend.createCertificate(caTemplate, caKey);
    const issuer = { certificatePem: ca, privateKeyPem: caKey.privateKeyPem };
    const leaf = await backend.createCertificate(leafTemplate, await backend.generateKeyPair('ecdsa-p256'), issuer);
    await expect(backend.crossSign(leaf, leafTemplate, issuer)).rejects.toThrow(/can cross-sign only self-signed certificates/);
  });

  it('refuses to sign a CSR whose self-signature does not verify (`openssl ca` exits 0 on it, writing nothing)', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const issuer = { certificatePem: await backend.createCertificate(caTemplate, key), privateKeyPem: key.privateKeyPem };
    const csr = await backend.createCsr({ commonName: 'x' }, key);
    const der = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 3]! ^= 0x01;
    const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(backend.signCsr(broken, leafTemplate, issuer)).rejects.toThrow(/certificate request signature does not verify/);
    await expect(backend.signCsr('not a request', leafTemplate, issuer)).rejects.toThrow(/not a valid certificate request/);
  });

  it('refuses SANs and names that could inject into the OpenSSL config', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    await expect(backend.createCertificate({ ...caTemplate, dnsNames: ['a.example\n[v3]'] }, key)).rejects.toThrow(/invalid DNS name SAN/);
    await expect(backend.createCertificate({ ...caTemplate, dnsNames: ['a, IP:1.2.3.4'] }, key)).rejects.toThrow(CryptoError);
    await expect(backend.createCertificate({ ...caTemplate, ipAddresses: ['10.0.0.300'] }, key)).rejects.toThrow(/invalid IP address SAN/);
    await expect(backend.createCsr({ commonName: 'a\nb' }, key)).rejects.toThrow(/control characters/);
    await expect(backend.createCertificate({ ...caTemplate, notAfter: caTemplate.notBefore }, key)).rejects.toThrow(/notAfter must be later/);
  });

  it('keeps DN values with /, + and \\ intact', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const subject = { commonName: 'a/b+c\\d', organization: ['system:masters', 'x=y'] };
    const cert = await backend.createCertificate({ ...caTemplate, subject }, key);
    const printed = await execa('openssl', ['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], { input: cert });
    expect(printed.stdout).toBe('subject=CN=a/b\\+c\\\\d,O=x=y,O=system:masters');
    expect((await backend.parseCsr(await backend.createCsr(subject, key))).subject).toEqual(subject);
  });

  it('returns false, not an exception, for garbage in verify/verifyIssuedBy/keyMatchesCertificate', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const cert = await backend.createCertificate(caTemplate, key);
    expect(await backend.verify(key.publicKeyPem, Buffer.from('x'), Buffer.from('not a signature'))).toBe(false);
    expect(await backend.verifyIssuedBy('not a cert', cert)).toBe(false);
    expect(await backend.keyMatchesCertificate(key.privateKeyPem, 'not a cert')).toBe(false);
  });

  it('bounds randomBytes', async () => {
    expect(await backend.randomBytes(0)).toHaveLength(0);
    await expect(backend.randomBytes(-1)).rejects.toThrow(/integer from 0/);
    await expect(backend.randomBytes(1.5)).rejects.toThrow(CryptoError);
  });

  it('in FIPS mode, refuses HMAC and AES-GCM rather than running them outside the FIPS provider', async () => {
    const fips = new OpenSSLCryptoBackend({ fips: true }); // no nodeRuntime, and this process is not on one
    await expect(fips.hmacSha256(Buffer.alloc(32), 'x')).rejects.toThrow(FipsUnavailableError);
    await expect(fips.encrypt(Buffer.alloc(32), Buffer.from('x'))).rejects.toThrow(/AES-256-GCM needs Node on the FIPS provider/);
  });
});

// A certificate for a key this backend generated costs one `openssl req -newkey` (key, public
// key and a request, together) and one `openssl ca`; serials come from one `openssl rand` per batch.
describe('process economy', () => {
  const now2 = Date.now();
  const template = (commonName: string): CertificateTemplate => ({ ...leafTemplate, subject: { commonName }, notBefore: new Date(now2), notAfter: new Date(now2 + 3_600_000) });

  function counted(): { backend: OpenSSLCryptoBackend; commands: string[] } {
    const commands: string[] = [];
    return { backend: new OpenSSLCryptoBackend({ trace: (e) => commands.push(e.command) }), commands };
  }

  it('makes a key pair in one process and certifies it in one more', async () => {
    const { backend, commands } = counted();
    const caKey = await backend.generateKeyPair('ecdsa-p256');
    expect(commands.filter((c) => c !== 'rand')).toEqual(['req']);
    const issuer = { certificatePem: await backend.createCertificate(caTemplate, caKey), privateKeyPem: caKey.privateKeyPem };
    const keys = await Promise.all(['rsa-2048', 'ecdsa-p384', 'ecdsa-p256'].map((a) => backend.generateKeyPair(a as 'rsa-2048')));
    const certs = await Promise.all(keys.map((k, i) => backend.createCertificate(template(`leaf-${i}`), k, issuer)));
    expect(commands.filter((c) => c === 'req')).toHaveLength(4);
    expect(commands.filter((c) => c === 'ca')).toHaveLength(4);
    expect(commands.filter((c) => c === 'rand')).toHaveLength(1);
    for (const [i, cert] of certs.entries()) {
      expect(await backend.keyMatchesCertificate(keys[i]!.privateKeyPem, cert)).toBe(true);
      expect(await backend.verifyIssuedBy(cert, issuer.certificatePem)).toBe(true);
      expect(backend.parseCertificate(cert).subject).toEqual({ commonName: `leaf-${i}` });
    }
    const serials = [issuer.certificatePem, ...certs].map((c) => backend.parseCertificate(c).serialNumber);
    expect(new Set(serials).size).toBe(serials.length);
    for (const serial of serials) expect(serial).toMatch(/^[0-7][0-9A-F]{31}$/i);
  });

  it('certifies keys it did not make, and never reuses a request for a changed key', async () => {
    const { backend, commands } = counted();
    const other = new OpenSSLCryptoBackend();
    const foreign = await other.generateKeyPair('ecdsa-p256');
    const selfSigned = await backend.createCertificate(caTemplate, foreign);
    expect(commands.filter((c) => c !== 'rand')).toEqual(['req', 'ca']); // a request from the key first
    expect(await backend.keyMatchesCertificate(foreign.privateKeyPem, selfSigned)).toBe(true);

    const key = await backend.generateKeyPair('ecdsa-p256');
    const issuer = { certificatePem: selfSigned, privateKeyPem: foreign.privateKeyPem };
    const swapped = { ...key }; // a copy: not the object generateKeyPair returned
    expect(await backend.keyMatchesCertificate(key.privateKeyPem, await backend.createCertificate(template('copy'), swapped, issuer))).toBe(true);
    key.privateKeyPem = foreign.privateKeyPem; // the same object, now holding another key
    key.publicKeyPem = foreign.publicKeyPem;
    const cert = await backend.createCertificate(template('changed'), key, issuer);
    expect(await backend.keyMatchesCertificate(foreign.privateKeyPem, cert)).toBe(true);
  });

  it('signs a CSR with a single `openssl ca`', async () => {
    const { backend, commands } = counted();
    const key = await backend.generateKeyPair('ecdsa-p256');
    const issuer = { certificatePem: await backend.createCertificate(caTemplate, key), privateKeyPem: key.privateKeyPem };
    const csr = await backend.createCsr({ commonName: 'csr', organization: ['system:nodes'] }, key, ['a.example']);
    commands.length = 0;
    const cert = await backend.signCsr(csr, template('system:node:a'), issuer);
    expect(commands).toEqual(['ca']);
    expect(backend.parseCertificate(cert).subject).toEqual({ commonName: 'system:node:a' });
  });
});
