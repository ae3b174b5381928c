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

  it('checks a CSR before signing it (`openssl req -verify` and `openssl ca` exit 0 on a bad signature)', async () => {
    const key = await backend.generateKeyPair('ecdsa-p256');
    const csr = await backend.createCsr({ commonName: 'x' }, key);
    const der = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 3]! ^= 0x01;
    const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(backend.signCsr(broken, leafTemplate, { certificatePem: '', privateKeyPem: key.privateKeyPem })).rejects.toThrow(/signature does not verify/);
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
