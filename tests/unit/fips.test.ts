// FIPS mode: detection, fail-closed behaviour, the Node runtime on the real (test-built)
// provider, the algorithm policy, the OpenSSL backend's refusals, the Go settings and
// the shared TLS settings.
import { execa } from 'execa';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditingCryptoBackend, type CryptoOperation } from '../../src/crypto/audit.js';
import {
  FipsPolicyError,
  FipsUnavailableError,
  assertApproved,
  detectFipsRequest,
  goFipsSettings,
  locateFipsProvider,
  nodeFipsConfig,
  parseProviderList,
  providerInfo,
  resolveFipsMode,
  selfTestNodeRuntime,
  type FipsEnabled,
  type NodeFipsRuntime,
} from '../../src/crypto/fips.js';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { OpenSSLCryptoBackend, OpenSSLCommandError, type OpenSSLEngine } from '../../src/crypto/openssl.js';
import { TLS12_CIPHER_SUITES, TLS13_CIPHER_SUITES, goTlsSettings, nodeTlsDefaults } from '../../src/crypto/tls.js';
import type { CertificateTemplate } from '../../src/crypto/types.js';
import { PINNED_NODE, SKIP_REASON, builtProvider } from '../fips/provider.js';

const provider = builtProvider();
let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'fips-test-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function kernelFile(content: string): Promise<string> {
  const file = path.join(await mkdtemp(path.join(scratch, 'proc-')), 'fips_enabled');
  await writeFile(file, content);
  return file;
}

const NO_KERNEL = '/nonexistent/proc/sys/crypto/fips_enabled';

describe('detecting a FIPS request', () => {
  it('is off on a plain host', async () => {
    expect(await detectFipsRequest({ env: {}, fipsEnabledPath: await kernelFile('0\n') })).toEqual({ requested: false, requestedBy: [] });
    expect((await detectFipsRequest({ env: {}, fipsEnabledPath: NO_KERNEL })).requested).toBe(false);
  });

  it('follows the kernel switch', async () => {
    const file = await kernelFile('1\n');
    expect(await detectFipsRequest({ env: {}, fipsEnabledPath: file })).toEqual({ requested: true, requestedBy: [`kernel (${file} = 1)`] });
  });

  it('follows K8S_FIPS=1 (snap fips=true), GOFIPS=1 and GODEBUG fips140=on|only', async () => {
    for (const env of [{ K8S_FIPS: '1' }, { K8S_FIPS: 'true' }, { GOFIPS: '1' }, { GODEBUG: 'http2client=0,fips140=on' }, { GODEBUG: 'fips140=only' }]) {
      expect((await detectFipsRequest({ env, fipsEnabledPath: NO_KERNEL })).requested).toBe(true);
    }
    for (const env of [{ K8S_FIPS: '0' }, { GODEBUG: 'fips140=off' }, { GOFIPS: '' }]) {
      expect((await detectFipsRequest({ env, fipsEnabledPath: NO_KERNEL })).requested).toBe(false);
    }
  });

  it('follows the bootstrap/join fips setting, which cannot switch off a FIPS kernel', async () => {
    expect((await detectFipsRequest({ env: {}, fipsEnabledPath: NO_KERNEL, setting: true })).requestedBy).toEqual(['the fips: true setting']);
    expect((await detectFipsRequest({ env: {}, fipsEnabledPath: await kernelFile('1'), setting: false })).requested).toBe(true);
  });
});

describe('failing closed when FIPS is requested but unavailable', () => {
  it('names the missing provider module on a host without one', async () => {
    const emptyModules = await mkdtemp(path.join(scratch, 'modules-'));
    const attempt = resolveFipsMode({
      env: { K8S_FIPS: '1' },
      fipsEnabledPath: NO_KERNEL,
      openssl: { binary: 'openssl', env: { OPENSSL_MODULES: emptyModules } },
      runtimeDir: path.join(scratch, 'never-written'),
    });
    await expect(attempt).rejects.toThrow(FipsUnavailableError);
    await expect(attempt).rejects.toThrow(`no FIPS provider module at ${emptyModules}/fips.so`);
    await expect(attempt).rejects.toThrow(/requested by K8S_FIPS=1/);
  });

  it('uses the host default modules directory (openssl version -m) when OPENSSL_MODULES is unset', async () => {
    const modulesDir = /MODULESDIR: "([^"]+)"/.exec((await execa('openssl', ['version', '-m'])).stdout)![1]!;
    const hasProvider = await readFile(path.join(modulesDir, 'fips.so')).then(() => true, () => false);
    const attempt = resolveFipsMode({ env: {}, setting: true, fipsEnabledPath: NO_KERNEL, openssl: { binary: 'openssl', env: {} }, runtimeDir: path.join(scratch, 'rt') });
    if (hasProvider) await expect(attempt).rejects.toThrow(FipsUnavailableError);
    else await expect(attempt).rejects.toThrow(`no FIPS provider module at ${modulesDir}/fips.so`);
  });

  it('names a missing openssl binary', async () => {
    await expect(
      resolveFipsMode({ env: { K8S_FIPS: '1' }, fipsEnabledPath: NO_KERNEL, openssl: { binary: '/nonexistent/openssl', env: {} }, runtimeDir: scratch }),
    ).rejects.toThrow(/openssl binary "\/nonexistent\/openssl" could not be run/);
  });

  it('returns disabled without touching OpenSSL when nothing asks for FIPS', async () => {
    const mode = await resolveFipsMode({ env: {}, fipsEnabledPath: NO_KERNEL, openssl: { binary: '/nonexistent/openssl', env: {} }, runtimeDir: scratch });
    expect(mode.enabled).toBe(false);
  });
});

describe('the policy', () => {
  it.each(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'P-256', 'secp384r1'])('allows %s keys', (keyAlgorithm) => {
    expect(() => assertApproved({ keyAlgorithm })).not.toThrow();
  });

  it('refuses small RSA, EdDSA and P-521 keys with the reason', () => {
    expect(() => assertApproved({ keyAlgorithm: 'rsa-1024' })).toThrow(/RSA keys must be at least 2048 bits; this one has 1024/);
    expect(() => assertApproved({ keyAlgorithm: 'ed25519' })).toThrow(/ed25519 keys are not accepted: the Go FIPS TLS policy .* rejects EdDSA/);
    expect(() => assertApproved({ keyAlgorithm: 'ed448' })).toThrow(FipsPolicyError);
    expect(() => assertApproved({ keyAlgorithm: 'ecdsa-p521' })).toThrow(/P-521/);
    expect(() => assertApproved({ keyAlgorithm: 'dsa' })).toThrow(/not allowed/);
  });

  it('allows SHA-2 and refuses SHA-1 and MD5', () => {
    for (const digest of ['sha256', 'SHA-256', 'sha384', 'SHA512', 'sha3-256']) expect(() => assertApproved({ digest })).not.toThrow();
    expect(() => assertApproved({ digest: 'sha1' })).toThrow(/SHA-1 is not allowed/);
    expect(() => assertApproved({ digest: 'SHA-1' })).toThrow(/SHA-1 is not allowed/);
    expect(() => assertApproved({ digest: 'md5' })).toThrow(/MD5 is not a FIPS-approved digest/);
  });

  it('allows AES-GCM and the shared TLS suites, refuses ChaCha20 and others', () => {
    for (const cipher of ['aes-256-gcm', 'AES-128-GCM', ...TLS12_CIPHER_SUITES.flatMap((s) => [s.go, s.openssl]), ...TLS13_CIPHER_SUITES]) {
      expect(() => assertApproved({ cipher })).not.toThrow();
    }
    for (const cipher of ['chacha20-poly1305', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256', 'TLS_CHACHA20_POLY1305_SHA256']) {
      expect(() => assertApproved({ cipher })).toThrow(/ChaCha20-Poly1305 is not FIPS-approved/);
    }
    expect(() => assertApproved({ cipher: 'rc4' })).toThrow(/not allowed; use AES-GCM/);
    expect(() => assertApproved({ cipher: 'TLS_RSA_WITH_AES_128_GCM_SHA256' })).toThrow(FipsPolicyError);
  });

  it('allows TLS 1.2/1.3 in any spelling and refuses older versions', () => {
    for (const tlsVersion of ['TLSv1.2', 'TLSv1.3', '1.2', 'VersionTLS12', 'VersionTLS13', 'TLS1.3']) expect(() => assertApproved({ tlsVersion })).not.toThrow();
    for (const tlsVersion of ['TLSv1', 'TLSv1.1', 'VersionTLS10', 'VersionTLS11', 'SSLv3']) {
      expect(() => assertApproved({ tlsVersion })).toThrow(/needs TLS 1.2 or newer/);
    }
  });
});

describe('OpenSSL provider listing and Node config generation', () => {
  it('parses `openssl list -providers -verbose`', () => {
    const out = [
      'Providers:',
      '  base',
      '    name: OpenSSL Base Provider',
      '    version: 3.0.19',
      '    status: active',
      '    build info: 3.0.19',
      '    gettable provider parameters:',
      '      name: pointer to a UTF8 encoded string (arbitrary size)',
      '  fips',
      '    name: OpenSSL FIPS Provider',
      '    version: 3.0.22',
      '    status: active',
      '    build info: 3.0.22',
    ].join('\n');
    expect(parseProviderList(out)).toEqual([
      { id: 'base', name: 'OpenSSL Base Provider', version: '3.0.19', status: 'active', buildInfo: '3.0.19' },
      { id: 'fips', name: 'OpenSSL FIPS Provider', version: '3.0.22', status: 'active', buildInfo: '3.0.22' },
    ]);
  });

  it('writes a nodejs_conf that includes the module config, activates fips and base, and defaults to fips=yes', () => {
    const text = nodeFipsConfig({ path: '/etc/ssl/fipsmodule.cnf', section: 'fips_sect' });
    expect(text).toMatch(/^nodejs_conf = k8s_fips_init$/m);
    expect(text).toMatch(/^\.include \/etc\/ssl\/fipsmodule\.cnf$/m);
    expect(text).toMatch(/^fips = fips_sect$/m);
    expect(text).toMatch(/\[k8s_fips_base\]\nactivate = 1/);
    expect(text).toMatch(/^default_properties = fips=yes$/m);
  });
});

describe('Go components', () => {
  it('get GODEBUG=fips140=on merged into their GODEBUG and the shared TLS settings', () => {
    const settings = goFipsSettings('http2client=0,fips140=off');
    expect(settings.env.GODEBUG).toBe('http2client=0,fips140=on');
    expect(goFipsSettings().env.GODEBUG).toBe('fips140=on');
    expect(settings.build.GOFIPS140).toBe('v1.0.0');
    expect(settings.tls.cipherSuites.split(',')).toEqual([
      'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
      'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
      'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
      'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
    ]);
    expect(settings.tls.minVersion).toBe('VersionTLS12');
    expect(settings.tls.curves).toEqual(['CurveP256', 'CurveP384']);
    for (const suite of settings.tls.cipherSuites.split(',')) expect(() => assertApproved({ cipher: suite })).not.toThrow();
  });
});

describe('Node TLS settings (k8sd HTTPS)', () => {
  const node = new NodeCryptoBackend();
  let server: https.Server;
  let port: number;
  let caPem: string;

  beforeAll(async () => {
    const caKey = await node.generateKeyPair('ecdsa-p384');
    const now = Date.now();
    const base = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 86_400_000) };
    caPem = await node.createCertificate({ ...base, subject: { commonName: 'tls-test-ca' }, isCA: true, keyUsage: ['keyCertSign', 'digitalSignature'] }, caKey);
    const key = await node.generateKeyPair('ecdsa-p256');
    const leaf: CertificateTemplate = {
      ...base, subject: { commonName: 'localhost' }, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
      isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['serverAuth'],
    };
    const cert = await node.createCertificate(leaf, key, { certificatePem: caPem, privateKeyPem: caKey.privateKeyPem });
    server = https.createServer({ ...nodeTlsDefaults(), cert, key: key.privateKeyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  function connect(options: tls.ConnectionOptions): Promise<{ protocol: string | null; cipher: string }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', ...options }, () => {
        const result = { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
        socket.end();
        resolve(result);
      });
      socket.on('error', reject);
    });
  }

  it('lists exactly the Go suites by their OpenSSL names plus the two TLS 1.3 AES-GCM suites', () => {
    const defaults = nodeTlsDefaults();
    expect(defaults.ciphers.split(':')).toEqual([...TLS12_CIPHER_SUITES.map((s) => s.openssl), 'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384']);
    expect(defaults).toMatchObject({ minVersion: 'TLSv1.2', ecdhCurve: 'P-256:P-384', honorCipherOrder: true });
    expect(goTlsSettings().cipherSuites.split(',')).toEqual(TLS12_CIPHER_SUITES.map((s) => s.go));
  });

  it('negotiates TLS 1.3 AES-GCM, and TLS 1.2 ECDHE-ECDSA AES-GCM when the client caps at 1.2', async () => {
    const v13 = await connect({});
    expect(v13.protocol).toBe('TLSv1.3');
    expect(TLS13_CIPHER_SUITES).toContain(v13.cipher);
    const v12 = await connect({ maxVersion: 'TLSv1.2' });
    expect(v12).toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    const client = await connect({ ...nodeTlsDefaults() });
    expect(client.protocol).toBe('TLSv1.3');
  });

  it('refuses TLS 1.1, ChaCha20 and X25519-only clients', async () => {
    await expect(connect({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).rejects.toThrow();
    await expect(connect({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' })).rejects.toThrow();
    await expect(connect({ ecdhCurve: 'X25519' })).rejects.toThrow();
  });
});

describe.skipIf(!provider)(`with the test-built FIPS provider${provider ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  let mode: FipsEnabled;

  beforeAll(async () => {
    const resolved = await resolveFipsMode({
      env: { K8S_FIPS: '1', ...provider!.env },
      fipsEnabledPath: NO_KERNEL,
      runtimeDir: await mkdtemp(path.join(scratch, 'runtime-')),
      nodeBinary: PINNED_NODE,
    });
    if (!resolved.enabled) throw new Error('FIPS mode was requested but resolved as disabled');
    mode = resolved;
  });

  it('resolves: provider found, active, named and versioned; Node self-test passes', async () => {
    expect(mode.location.modulePath).toBe(path.join(provider!.dir, 'fips.so'));
    expect(mode.provider).toMatchObject({ name: 'OpenSSL FIPS Provider', version: provider!.version, active: true });
    expect(await providerInfo(mode.openssl)).toEqual(mode.provider);
    expect(mode.selfTest).toEqual({ getFips: 1, sha256: true, md5Refused: true, ecdsaP256: true });
    expect(mode.runtime.env).toEqual({ OPENSSL_CONF: mode.runtime.configPath, OPENSSL_MODULES: provider!.dir });
    expect(mode.runtime.execArgv).toEqual([`--openssl-config=${mode.runtime.configPath}`, '--force-fips']);
  });

  it('relaunches Node onto the provider: sha256 works, md5 fails, setFips(false) is forbidden (also via NODE_OPTIONS)', async () => {
    const probe = `const c=require('node:crypto');
      const out={fips:c.getFips(),sha:c.createHash('sha256').update('x').digest('hex').length};
      try{c.createHash('md5');out.md5='allowed'}catch(e){out.md5=e.code}
      try{c.setFips(false);out.off='allowed'}catch(e){out.off=e.code}
      console.log(JSON.stringify(out));`;
    const expected = { fips: 1, sha: 64, md5: 'ERR_OSSL_EVP_UNSUPPORTED', off: 'ERR_CRYPTO_FIPS_FORCED' };
    const viaArgv = await execa(PINNED_NODE, [...mode.runtime.execArgv, '-e', probe], { env: { ...mode.runtime.env, NODE_OPTIONS: '' } });
    expect(JSON.parse(viaArgv.stdout)).toEqual(expected);
    const viaNodeOptions = await execa(PINNED_NODE, ['-e', probe], { env: { ...mode.runtime.env, NODE_OPTIONS: mode.runtime.nodeOptions } });
    expect(JSON.parse(viaNodeOptions.stdout)).toEqual(expected);
  });

  it('finds the provider but reports it inactive when the host config does not activate it', async () => {
    const plainConf = path.join(scratch, 'plain-openssl.cnf');
    await writeFile(plainConf, '# activates nothing\n');
    const attempt = resolveFipsMode({
      env: { K8S_FIPS: '1', OPENSSL_CONF: plainConf, OPENSSL_MODULES: provider!.dir },
      fipsEnabledPath: NO_KERNEL,
      runtimeDir: path.join(scratch, 'unused'),
      nodeBinary: PINNED_NODE,
    });
    await expect(attempt).rejects.toThrow(/the FIPS provider is not active in the host OpenSSL \(loaded providers: default\)/);
  });

  it('runs Node on the host config itself (--openssl-shared-config) when it has no separate fipsmodule.cnf', async () => {
    // A host whose openssl.cnf carries the fipsinstall settings inline, and whose modules directory holds only fips.so.
    const modules = await mkdtemp(path.join(scratch, 'inline-modules-'));
    await symlink(path.join(provider!.dir, 'fips.so'), path.join(modules, 'fips.so'));
    const moduleSettings = await readFile(path.join(provider!.dir, 'fipsmodule.cnf'), 'utf8');
    const hostConf = path.join(await mkdtemp(path.join(scratch, 'inline-etc-')), 'openssl.cnf');
    await writeFile(
      hostConf,
      `openssl_conf = init\n[init]\nproviders = p\nalg_section = a\n[p]\nfips = fips_sect\nbase = b\n[b]\nactivate = 1\n[a]\ndefault_properties = fips=yes\n${moduleSettings}`,
    );
    const inline = await resolveFipsMode({
      env: { K8S_FIPS: '1', OPENSSL_CONF: hostConf, OPENSSL_MODULES: modules },
      fipsEnabledPath: NO_KERNEL,
      runtimeDir: path.join(scratch, 'unused-inline'),
      nodeBinary: PINNED_NODE,
    });
    if (!inline.enabled) throw new Error('expected FIPS mode');
    expect(inline.location.moduleConfig).toBeUndefined();
    expect(inline.runtime.execArgv).toEqual([`--openssl-config=${hostConf}`, '--openssl-shared-config', '--force-fips']);
    expect(inline.selfTest).toEqual({ getFips: 1, sha256: true, md5Refused: true, ecdsaP256: true });
  });

  it('fails the self-test when Node is not restricted to the provider (MD5 still works)', async () => {
    const location = await locateFipsProvider({ binary: 'openssl', env: provider!.env });
    const loose = path.join(scratch, 'loose.cnf');
    // fips loaded, but default too and no fips=yes: getFips() is 0 and MD5 works.
    await writeFile(loose, `nodejs_conf = init\n.include ${location.moduleConfig!.path}\n[init]\nproviders = p\n[p]\nfips = fips_sect\ndefault = d\n[d]\nactivate = 1\n`);
    const runtime: NodeFipsRuntime = {
      configPath: loose, modulesDir: provider!.dir, env: { OPENSSL_CONF: loose, OPENSSL_MODULES: provider!.dir },
      execArgv: [`--openssl-config=${loose}`], nodeOptions: '',
    };
    await expect(selfTestNodeRuntime(runtime, PINNED_NODE)).rejects.toThrow(/self-test: MD5 succeeded, so Node is not restricted to the FIPS provider/);
  });

  it('fails the self-test when the provider cannot load (getFips() alone would have said 1)', async () => {
    const runtime: NodeFipsRuntime = {
      ...mode.runtime,
      env: { ...mode.runtime.env, OPENSSL_MODULES: await mkdtemp(path.join(scratch, 'nomodules-')) },
    };
    await expect(selfTestNodeRuntime(runtime, PINNED_NODE)).rejects.toThrow(FipsUnavailableError);
  });

  describe('the OpenSSL backend in FIPS mode', () => {
    let fipsBackend: OpenSSLCryptoBackend;
    const plain = new OpenSSLCryptoBackend(); // host default provider: makes the weak material to feed in
    let weak: { rsa1024: string; ed25519: string; sha1Cert: string; sha1Csr: string };

    beforeAll(async () => {
      fipsBackend = OpenSSLCryptoBackend.forFipsMode(mode);
      const run = async (args: string[]): Promise<string> => (await execa('openssl', args, { env: { OPENSSL_CONF: '', OPENSSL_MODULES: '' } })).stdout;
      const rsa1024 = await run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']);
      const ed25519 = await run(['genpkey', '-algorithm', 'ED25519']);
      const dir = await mkdtemp(path.join(scratch, 'weak-'));
      const rsa2048 = (await plain.generateKeyPair('rsa-2048')).privateKeyPem;
      await writeFile(path.join(dir, 'k.pem'), rsa2048, { mode: 0o600 });
      const sha1Cert = await run(['req', '-x509', '-new', '-sha1', '-key', path.join(dir, 'k.pem'), '-subj', '/CN=legacy', '-days', '30']);
      const sha1Csr = await run(['req', '-new', '-sha1', '-key', path.join(dir, 'k.pem'), '-subj', '/CN=legacy']);
      weak = { rsa1024, ed25519, sha1Cert, sha1Csr };
    });

    it('refuses MD5 by policy, and the provider refuses it even with the policy bypassed', async () => {
      await expect(fipsBackend.digest('md5', 'x')).rejects.toThrow(/MD5 is not a FIPS-approved digest/);
      const noPolicy = new OpenSSLCryptoBackend({ env: provider!.env });
      await expect(noPolicy.digest('md5', 'x')).rejects.toThrow(OpenSSLCommandError);
      await expect(noPolicy.digest('md5', 'x')).rejects.toThrow(/unsupported/);
    });

    it('refuses SHA-1 signatures: SHA-1 certificates and CSRs, and SHA-1 signing in the provider', async () => {
      await expect(fipsBackend.verifyIssuedBy(weak.sha1Cert, weak.sha1Cert)).rejects.toThrow(/signed with sha1WithRSAEncryption, which FIPS mode does not accept/);
      await expect(fipsBackend.parseCsr(weak.sha1Csr)).rejects.toThrow(FipsPolicyError);
      await expect(fipsBackend.digest('sha1', 'x')).rejects.toThrow(/SHA-1 is not allowed/);
      const key = await fipsBackend.generateKeyPair('ecdsa-p256');
      const dir = await mkdtemp(path.join(scratch, 'sha1sign-'));
      await writeFile(path.join(dir, 'k.pem'), key.privateKeyPem, { mode: 0o600 });
      const r = await execa('openssl', ['dgst', '-sha1', '-sign', path.join(dir, 'k.pem')], { env: provider!.env, input: 'x', reject: false, encoding: 'buffer' });
      expect(r.exitCode).not.toBe(0);
      expect(Buffer.from(r.stderr).toString()).toMatch(/digest not allowed/);
    });

    it('refuses RSA-1024 keys for signing, certificates and CSRs', async () => {
      await expect(fipsBackend.sign(weak.rsa1024, Buffer.from('x'))).rejects.toThrow(/RSA keys must be at least 2048 bits; this one has 1024/);
      const key = { algorithm: 'rsa-2048' as const, privateKeyPem: weak.rsa1024, publicKeyPem: await plain.publicKeyOf(weak.rsa1024) };
      const template: CertificateTemplate = { subject: { commonName: 'weak' }, isCA: true, keyUsage: ['keyCertSign'], notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000) };
      await expect(fipsBackend.createCertificate(template, key)).rejects.toThrow(FipsPolicyError);
      await expect(fipsBackend.createCsr({ commonName: 'weak' }, key)).rejects.toThrow(FipsPolicyError);
      const weakCsr = await plain.createCsr({ commonName: 'weak' }, key);
      await expect(fipsBackend.parseCsr(weakCsr)).rejects.toThrow(/at least 2048 bits/);
    });

    it('refuses Ed25519 keys, which the 3.0 FIPS provider itself would accept', async () => {
      await expect(fipsBackend.sign(weak.ed25519, Buffer.from('x'))).rejects.toThrow(/ed25519 keys are not accepted/);
      await expect(fipsBackend.verify(await plain.publicKeyOf(weak.ed25519), Buffer.from('x'), Buffer.alloc(64))).rejects.toThrow(FipsPolicyError);
      const provided = await execa('openssl', ['genpkey', '-algorithm', 'ED25519'], { env: provider!.env, reject: false });
      expect(provided.exitCode).toBe(0); // hence the policy check in front of it
    });

    it('passes -propquery fips=yes to every openssl command', async () => {
      const wrapper = path.join(scratch, 'openssl-logging');
      const log = path.join(scratch, 'openssl-argv.log');
      await writeFile(wrapper, `#!/bin/sh\necho "$*" >> '${log}'\nexec openssl "$@"\n`, { mode: 0o755 });
      const traced = new OpenSSLCryptoBackend({ binary: wrapper, env: provider!.env, fips: true });
      const key = await traced.generateKeyPair('ecdsa-p256');
      await traced.createCertificate({ subject: { commonName: 'p' }, isCA: true, keyUsage: ['keyCertSign'], notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000) }, key);
      const lines = (await readFile(log, 'utf8')).trim().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(2);
      for (const line of lines) expect(line).toMatch(/^\S+ -propquery fips=yes/);
    });

    it('audit: every operation of a full PKI + secrets flow ran in the OpenSSL backend, on openssl or the FIPS Node runtime', async () => {
      const engines = new Set<OpenSSLEngine>();
      const traced = OpenSSLCryptoBackend.forFipsMode(mode, { trace: (e) => engines.add(e.engine) });
      const audited = new AuditingCryptoBackend(traced);
      const now = Date.now();
      const caKey = await audited.generateKeyPair('ecdsa-p256');
      const ca = await audited.createCertificate({ subject: { commonName: 'audit CA' }, isCA: true, keyUsage: ['keyCertSign', 'digitalSignature'], notBefore: new Date(now), notAfter: new Date(now + 864e5) }, caKey);
      const issuer = { certificatePem: ca, privateKeyPem: caKey.privateKeyPem };
      const leafKey = await audited.generateKeyPair('rsa-2048');
      const leafTemplate: CertificateTemplate = { subject: { commonName: 'audit leaf' }, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['serverAuth'], dnsNames: ['leaf'], notBefore: new Date(now), notAfter: new Date(now + 864e5) };
      const leaf = await audited.createCertificate(leafTemplate, leafKey, issuer);
      const csr = await audited.createCsr({ commonName: 'audit csr' }, leafKey, ['csr']);
      await audited.parseCsr(csr);
      await audited.signCsr(csr, leafTemplate, issuer);
      const newCaKey = await audited.generateKeyPair('ecdsa-p384');
      const newCa = await audited.createCertificate({ subject: { commonName: 'audit CA 2' }, isCA: true, keyUsage: ['keyCertSign'], notBefore: new Date(now), notAfter: new Date(now + 864e5) }, newCaKey);
      await audited.crossSign(newCa, { subject: { commonName: 'audit CA 2' }, isCA: true, keyUsage: ['keyCertSign'], notBefore: new Date(now), notAfter: new Date(now + 864e5) }, issuer);
      audited.parseCertificate(leaf);
      expect(await audited.verifyIssuedBy(leaf, ca)).toBe(true);
      expect(await audited.keyMatchesCertificate(leafKey.privateKeyPem, leaf)).toBe(true);
      expect(await audited.publicKeyOf(leafKey.privateKeyPem)).toBe(leafKey.publicKeyPem);
      await audited.sha256('x');
      const secret = await audited.randomBytes(32);
      await audited.hmacSha256(secret, 'token');
      const signature = await audited.sign(leafKey.privateKeyPem, Buffer.from('m'));
      expect(await audited.verify(leafKey.publicKeyPem, Buffer.from('m'), signature)).toBe(true);
      expect((await audited.decrypt(secret, await audited.encrypt(secret, Buffer.from('s')))).toString()).toBe('s');

      const all: CryptoOperation[] = [
        'generateKeyPair', 'publicKeyOf', 'createCertificate', 'crossSign', 'createCsr', 'signCsr', 'parseCsr', 'parseCertificate',
        'verifyIssuedBy', 'keyMatchesCertificate', 'sha256', 'hmacSha256', 'randomBytes', 'sign', 'verify', 'encrypt', 'decrypt',
      ];
      expect(new Set(audited.entries.map((e) => e.operation))).toEqual(new Set(all));
      expect(audited.entries.every((e) => e.backend === 'openssl' && e.ok)).toBe(true);
      // This test process is not on the FIPS runtime, so nothing ran in its own (non-FIPS) crypto.
      expect(engines).toEqual(new Set<OpenSSLEngine>(['openssl-cli', 'node-fips-child']));
    });
  });
});
