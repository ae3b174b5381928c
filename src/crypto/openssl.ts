// Host-OpenSSL backend: every key, certificate, CSR, hash, random byte and signature
// is made by the host `openssl` binary, so in FIPS mode they come from the host's FIPS
// provider. Commands are judged by exit code (and, where OpenSSL 3.0 exits 0 on
// failure, by their output); secrets travel over stdin/stdout pipes or in 0600 files
// inside a private mkdtemp directory that is removed afterwards, never on the command line.
// A certificate for a key made here costs two processes: `req -newkey` (key, public key and
// a request) and `ca`; serial numbers are drawn in batches.
import { execa } from 'execa';
import { X509Certificate, createPrivateKey, createPublicKey, getFips, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { FipsPolicyError, FipsUnavailableError, assertApproved, type FipsEnabled, type NodeFipsRuntime } from './fips.js';
import { NodeCryptoBackend, parseCertificateInfo } from './node.js';
import {
  CryptoError,
  type CertificateInfo,
  type CertificateTemplate,
  type CryptoBackend,
  type DistinguishedName,
  type Issuer,
  type KeyAlgorithm,
  type KeyPair,
  type KeyUsage,
} from './types.js';

/** A failed openssl command. The message names the subcommand and OpenSSL's own error lines. */
export class OpenSSLCommandError extends CryptoError {
  readonly subcommand: string;
  readonly exitCode: number | undefined;

  constructor(subcommand: string, exitCode: number | undefined, detail: string) {
    super(`openssl ${subcommand} failed${exitCode === undefined ? '' : ` (exit ${exitCode})`}: ${detail}`);
    this.name = 'OpenSSLCommandError';
    this.subcommand = subcommand;
    this.exitCode = exitCode;
  }
}

export class OpenSSLNotFoundError extends CryptoError {
  constructor(binary: string) {
    super(`the openssl binary "${binary}" was not found; install the openssl package or pass its path in the backend options`);
    this.name = 'OpenSSLNotFoundError';
  }
}

/** Where an operation actually ran; reported through the trace option. */
export type OpenSSLEngine = 'openssl-cli' | 'node-in-process' | 'node-fips-child';

export interface OpenSSLTraceEvent {
  engine: OpenSSLEngine;
  /** The openssl subcommand, or the symmetric operation for the Node engines. */
  command: string;
}

export interface OpenSSLBackendOptions {
  /** The openssl binary; default "openssl" on PATH. */
  binary?: string;
  /** OPENSSL_CONF / OPENSSL_MODULES for the binary (tests point these at a built provider). */
  env?: { OPENSSL_CONF?: string; OPENSSL_MODULES?: string };
  /** FIPS mode: pass -propquery fips=yes and refuse non-approved keys and digests up front. */
  fips?: boolean;
  /**
   * Node runtime on the FIPS provider for HMAC and AES-GCM (see below), used when this
   * process itself is not running on it.
   */
  nodeRuntime?: NodeFipsRuntime;
  /** Node binary for nodeRuntime; default this process's. */
  nodeBinary?: string;
  /** Parent of the private temporary directories; default os.tmpdir(). */
  tmpDir?: string;
  /** Per-command timeout; default 120 s (RSA-4096 generation on a busy host). */
  timeoutMs?: number;
  /** Debug hook: called for every command with where it ran. Never receives key material. */
  trace?: (event: OpenSSLTraceEvent) => void;
}

interface RunOptions {
  input?: Buffer | string;
  cwd?: string;
}

interface RunResult {
  stdout: Buffer;
  stderr: string;
}

const KEY_USAGE_NAMES: Record<KeyUsage, string> = {
  digitalSignature: 'digitalSignature',
  keyEncipherment: 'keyEncipherment',
  keyCertSign: 'keyCertSign',
  crlSign: 'cRLSign',
};

// DNS names go into an OpenSSL config file, so anything that could break its syntax is refused.
const DNS_NAME = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?$/;

function checkSans(dnsNames: string[], ipAddresses: string[]): void {
  for (const name of dnsNames) {
    if (!DNS_NAME.test(name)) throw new CryptoError(`invalid DNS name SAN "${name}"`);
  }
  for (const ip of ipAddresses) {
    if (!isIP(ip)) throw new CryptoError(`invalid IP address SAN "${ip}"`);
  }
}

function checkDn(dn: DistinguishedName): void {
  for (const value of [dn.commonName, ...(dn.organization ?? [])]) {
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new CryptoError(`distinguished name value ${JSON.stringify(value)} holds control characters`);
  }
  if (!dn.commonName) throw new CryptoError('a certificate subject needs a common name');
}

function checkTemplate(template: CertificateTemplate): void {
  checkDn(template.subject);
  checkSans(template.dnsNames ?? [], template.ipAddresses ?? []);
  if (!(template.notAfter > template.notBefore)) throw new CryptoError('certificate notAfter must be later than notBefore');
}

/** `-subj` form: /O=a/O=b/CN=c, with \ / + escaped. Organizations first, as the Node backend orders them. */
function subjArg(dn: DistinguishedName): string {
  const escape = (v: string): string => v.replace(/([\\/+])/g, '\\$1');
  return [...(dn.organization ?? []).map((o) => `/O=${escape(o)}`), `/CN=${escape(dn.commonName)}`].join('');
}

function sanValue(dnsNames: string[], ipAddresses: string[]): string | undefined {
  const names = [...dnsNames.map((n) => `DNS:${n}`), ...ipAddresses.map((ip) => `IP:${ip}`)];
  return names.length ? names.join(', ') : undefined;
}

/** The [v3] extension section of the `openssl ca` configuration. */
function extensionSection(template: CertificateTemplate): string[] {
  const lines = ['[v3]'];
  if (template.isCA) {
    lines.push(`basicConstraints = critical, CA:TRUE${template.pathLength === undefined ? '' : `, pathlen:${template.pathLength}`}`);
  } else {
    lines.push('basicConstraints = critical, CA:FALSE');
  }
  if (template.keyUsage.length) lines.push(`keyUsage = critical, ${template.keyUsage.map((u) => KEY_USAGE_NAMES[u]).join(', ')}`);
  if (template.extKeyUsage?.length) lines.push(`extendedKeyUsage = ${template.extKeyUsage.join(', ')}`);
  const san = sanValue(template.dnsNames ?? [], template.ipAddresses ?? []);
  if (san) lines.push(`subjectAltName = ${san}`);
  lines.push('subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid:always');
  return lines;
}

/**
 * A minimal `openssl ca` configuration: a throwaway database and serial file in the private
 * directory, and the certificate's extensions in [v3], so one file configures the one command
 * that makes the certificate.
 */
function caConfig(template: CertificateTemplate): string {
  return [
    '[ca]',
    'default_ca = k8s_ca',
    '[k8s_ca]',
    'database = index.txt',
    'new_certs_dir = .',
    'serial = serial',
    'default_md = sha256',
    'policy = k8s_policy',
    'unique_subject = no',
    'email_in_dn = no',
    'copy_extensions = none',
    '[k8s_policy]',
    'organizationName = optional',
    'commonName = supplied',
    ...extensionSection(template),
    '',
  ].join('\n');
}

/** GeneralizedTime as `openssl ca -startdate/-enddate` takes it (seconds precision, UTC). */
function caDate(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** Policy name of a key for assertApproved, from its PEM (parsing only, no cryptographic operation). */
function keyPolicyName(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      return `rsa-${details.modulusLength ?? 0}`;
    case 'ec':
      return details.namedCurve === 'prime256v1' ? 'ecdsa-p256' : details.namedCurve === 'secp384r1' ? 'ecdsa-p384' : String(details.namedCurve);
    default:
      return String(key.asymmetricKeyType);
  }
}

function parseKey(pem: string, kind: 'private' | 'public'): KeyObject {
  try {
    return kind === 'private' ? createPrivateKey(pem) : createPublicKey(pem);
  } catch (err) {
    throw new CryptoError(`not a PEM ${kind} key: ${(err as Error).message}`);
  }
}

function parsePublicKeyDer(spki: Buffer): KeyObject {
  try {
    return createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CryptoError(`not a valid certificate request: its public key does not parse (${(err as Error).message})`);
  }
}

/** The first PEM block of a label in text, with a final newline. */
function pemBlock(text: string, label: string): string | undefined {
  const match = new RegExp(`-----BEGIN ${label}-----\\r?\\n[\\s\\S]*?-----END ${label}-----`).exec(text);
  return match ? match[0] + '\n' : undefined;
}

/** Placeholder subject of the request generateKeyPair makes: `openssl ca -subj` replaces it. */
const KEY_REQUEST_SUBJECT = '/CN=k8s-ts key';

/** Serial numbers drawn per `openssl rand`. */
const SERIAL_BATCH = 64;

// Signature algorithm OIDs whose digest FIPS mode refuses.
const WEAK_SIGNATURE_OIDS: Record<string, string> = {
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10040.4.3': 'dsa-with-SHA1',
  '1.3.101.112': 'Ed25519',
  '1.3.101.113': 'Ed448',
};

interface Tlv {
  tag: number;
  /** Offset of the tag byte. */
  header: number;
  /** Offset of the contents. */
  start: number;
  /** Offset just past the contents. */
  end: number;
}

/** One DER TLV at pos, or undefined when it does not fit in der. */
function readTlv(der: Buffer, pos: number): Tlv | undefined {
  if (pos + 2 > der.length) return undefined;
  const header = pos;
  const tag = der[pos]!;
  let length = der[pos + 1]!;
  pos += 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4 || pos + n > der.length) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[pos + i]!;
    pos += n;
  }
  if (pos + length > der.length) return undefined;
  return { tag, header, start: pos, end: pos + length };
}

/**
 * The signatureAlgorithm OID of a certificate or CSR: both are SEQUENCE { body, AlgorithmIdentifier, BIT STRING }.
 * A small DER walk, because the Node 20 runtime some tools still use lacks X509Certificate.signatureAlgorithmOid.
 */
function signatureAlgorithmOid(der: Buffer): string | undefined {
  const outer = readTlv(der, 0);
  if (outer?.tag !== 0x30) return undefined;
  const body = readTlv(der, outer.start);
  if (!body) return undefined;
  const algorithm = readTlv(der, body.end);
  if (algorithm?.tag !== 0x30) return undefined;
  const oid = readTlv(der, algorithm.start);
  if (oid?.tag !== 0x06 || oid.end === oid.start) return undefined;
  const bytes = der.subarray(oid.start, oid.end);
  const parts = [Math.floor(bytes[0]! / 40), bytes[0]! % 40];
  let value = 0;
  for (const b of bytes.subarray(1)) {
    value = value * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

/**
 * The SubjectPublicKeyInfo DER of a CSR: SEQUENCE { SEQUENCE { version, subject, spki, [0] attributes }, ... }.
 * Only for the policy check on the key; `openssl ca` verifies the request's signature itself.
 */
function csrPublicKeyDer(der: Buffer): Buffer | undefined {
  const outer = readTlv(der, 0);
  if (outer?.tag !== 0x30) return undefined;
  const info = readTlv(der, outer.start);
  if (info?.tag !== 0x30) return undefined;
  const version = readTlv(der, info.start);
  if (version?.tag !== 0x02) return undefined;
  const subject = readTlv(der, version.end);
  if (subject?.tag !== 0x30) return undefined;
  const spki = readTlv(der, subject.end);
  if (spki?.tag !== 0x30 || spki.end > info.end) return undefined;
  return der.subarray(spki.header, spki.end);
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** IPv6 addresses as the URL parser compresses them (::1), so both backends report the same text. */
function normaliseIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** The `-nameopt sep_multiline,sname,...` subject block: one "    KEY=value" per line. */
function parseMultilineDn(lines: string[]): DistinguishedName {
  const organization: string[] = [];
  let commonName = '';
  for (const line of lines) {
    const match = /^\s+([A-Za-z]+)=(.*)$/.exec(line);
    if (!match) continue;
    const value = unescapeNameValue(match[2]!);
    if (match[1] === 'CN') commonName = value;
    if (match[1] === 'O') organization.push(value);
  }
  return organization.length ? { commonName, organization } : { commonName };
}

/** Undoes esc_ctrl: \\ for a backslash, \XX (hex) for a control character. */
function unescapeNameValue(value: string): string {
  return value.replace(/\\([0-9A-Fa-f]{2}|.)/g, (_, esc: string) => (esc.length === 2 ? String.fromCharCode(parseInt(esc, 16)) : esc));
}

const NAMEOPT = 'sep_multiline,sname,utf8,esc_ctrl';

// The program a child Node runs for HMAC and AES-GCM on the FIPS provider. The request
// (keys included) arrives on stdin, never in argv.
const SYMMETRIC_PROGRAM = `
const c = require('node:crypto');
if (c.getFips() !== 1) { process.stderr.write('Node is not running on the FIPS provider'); process.exit(3); }
let raw = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { raw += d; });
process.stdin.on('end', () => {
  const q = JSON.parse(raw);
  const key = Buffer.from(q.key, 'base64');
  const data = Buffer.from(q.data, 'base64');
  const aad = q.aad === undefined ? undefined : Buffer.from(q.aad, 'base64');
  let out;
  if (q.op === 'hmac') out = c.createHmac('sha256', key).update(data).digest();
  else if (q.op === 'encrypt') {
    const iv = c.randomBytes(12);
    const cipher = c.createCipheriv('aes-256-gcm', key, iv);
    if (aad) cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(data), cipher.final()]);
    out = Buffer.concat([iv, body, cipher.getAuthTag()]);
  } else {
    const d = c.createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
    if (aad) d.setAAD(aad);
    d.setAuthTag(data.subarray(data.length - 16));
    try { out = Buffer.concat([d.update(data.subarray(12, data.length - 16)), d.final()]); }
    catch { process.stdout.write(JSON.stringify({ ok: false })); return; }
  }
  process.stdout.write(JSON.stringify({ ok: true, result: out.toString('base64') }));
});
`;

type SymmetricOp = 'hmac' | 'encrypt' | 'decrypt';

export class OpenSSLCryptoBackend implements CryptoBackend {
  readonly name = 'openssl' as const;
  readonly fips: boolean;
  private readonly binary: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly options: OpenSSLBackendOptions;
  // Delegate for HMAC/AES-GCM when Node's own crypto is the right engine (see symmetric()).
  private readonly nodeSymmetric = new NodeCryptoBackend();
  // The request generateKeyPair made with each key pair it returned, for createCertificate.
  private readonly keyRequests = new WeakMap<KeyPair, { privateKeyPem: string; csrPem: string }>();
  // Serial numbers drawn ahead (see serialNumber) and the `openssl rand` refilling them.
  private readonly serials: string[] = [];
  private serialRefill: Promise<void> | undefined;

  constructor(options: OpenSSLBackendOptions = {}) {
    this.options = options;
    this.binary = options.binary ?? 'openssl';
    this.fips = options.fips ?? false;
    // OPENSSL_* not given in the options are cleared, so the backend sees exactly what it was configured with.
    this.env = { ...process.env, OPENSSL_CONF: undefined, OPENSSL_MODULES: undefined, ...(options.env ?? {}) };
  }

  /** The backend for a resolved FIPS mode (fips.ts resolveFipsMode). */
  static forFipsMode(mode: FipsEnabled, extra: Pick<OpenSSLBackendOptions, 'tmpDir' | 'timeoutMs' | 'trace'> = {}): OpenSSLCryptoBackend {
    return new OpenSSLCryptoBackend({
      ...extra,
      binary: mode.openssl.binary,
      env: mode.openssl.env,
      fips: true,
      nodeRuntime: mode.runtime,
      nodeBinary: mode.nodeBinary,
    });
  }

  // -------------------------------------------------------------------------
  // Running openssl.

  private async run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    const [subcommand, ...rest] = args;
    const argv = this.fips ? [subcommand!, '-propquery', 'fips=yes', ...rest] : args;
    this.options.trace?.({ engine: 'openssl-cli', command: subcommand! });
    const result = await execa(this.binary, argv, {
      env: this.env,
      extendEnv: false,
      cwd: options.cwd,
      // No stdin pipe for commands that read nothing: a cheaper spawn.
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
      encoding: 'buffer',
      stripFinalNewline: false,
      reject: false,
      timeout: this.options.timeoutMs ?? 120_000,
    });
    const stderr = Buffer.from(result.stderr).toString('utf8');
    if (result.failed) {
      if (result.code === 'ENOENT') throw new OpenSSLNotFoundError(this.binary);
      if (result.timedOut) throw new OpenSSLCommandError(subcommand!, undefined, `timed out after ${this.options.timeoutMs ?? 120_000} ms`);
      throw new OpenSSLCommandError(subcommand!, result.exitCode, openSSLErrorText(stderr) || (result.shortMessage ?? 'unknown error'));
    }
    return { stdout: Buffer.from(result.stdout), stderr };
  }

  /** Runs fn with a fresh private directory (0700) and removes it afterwards. */
  private async withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(this.options.tmpDir ?? os.tmpdir(), 'k8s-openssl-'));
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async writeSecret(dir: string, name: string, data: string | Buffer): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, data, { mode: 0o600, flag: 'wx' });
    return file;
  }

  // -------------------------------------------------------------------------
  // Policy (FIPS mode only).

  private approveKey(pem: string | KeyObject, kind: 'private' | 'public'): KeyObject {
    const key = typeof pem === 'string' ? parseKey(pem, kind) : pem;
    if (this.fips) assertApproved({ keyAlgorithm: keyPolicyName(key) });
    return key;
  }

  private approveSignatureOf(pem: string, what: string): void {
    if (!this.fips) return;
    const oid = signatureAlgorithmOid(pemToDer(pem));
    const weak = oid ? WEAK_SIGNATURE_OIDS[oid] : undefined;
    if (weak) throw new FipsPolicyError(`the ${what} is signed with ${weak}, which FIPS mode does not accept; reissue it with SHA-256 and ECDSA P-256/P-384 or RSA ≥ 2048`);
  }

  /** The digest a key signs with: SHA-384 for P-384 keys, SHA-256 otherwise (as the Node backend does). */
  private signingDigest(key: KeyObject): 'sha256' | 'sha384' {
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  }

  // -------------------------------------------------------------------------
  // Keys.
  //
  // One `openssl req -newkey` makes the key, prints its public key and a CSR signed with it:
  // the key pair in one process, and the CSR is what `openssl ca` needs later to certify this
  // key (it only carries the public key; -subj and [v3] define the certificate), so
  // createCertificate for a key made here is a single `openssl ca`.

  async generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair> {
    let keyArgs: string[];
    switch (algorithm) {
      case 'ecdsa-p256':
      case 'ecdsa-p384':
        keyArgs = ['-newkey', 'EC', '-pkeyopt', `ec_paramgen_curve:${algorithm === 'ecdsa-p256' ? 'P-256' : 'P-384'}`, '-pkeyopt', 'ec_param_enc:named_curve'];
        break;
      case 'rsa-2048':
      case 'rsa-3072':
      case 'rsa-4096':
        keyArgs = ['-newkey', 'RSA', '-pkeyopt', `rsa_keygen_bits:${algorithm.slice(4)}`];
        break;
      default:
        throw new CryptoError(`unknown key algorithm "${String(algorithm)}"`);
    }
    if (this.fips) assertApproved({ keyAlgorithm: algorithm });
    // Keys are mostly made to be certified: serials are drawn while the key is made.
    this.prefetchSerials();
    // -keyout - : the PKCS#8 key goes to stdout with the rest, never to the disk.
    const out = (
      await this.run(['req', '-new', ...keyArgs, '-noenc', '-keyout', '-', '-pubkey', '-subj', KEY_REQUEST_SUBJECT, `-${algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256'}`])
    ).stdout.toString('utf8');
    const privateKeyPem = pemBlock(out, 'PRIVATE KEY');
    const publicKeyPem = pemBlock(out, 'PUBLIC KEY');
    const csrPem = pemBlock(out, 'CERTIFICATE REQUEST');
    if (!privateKeyPem || !publicKeyPem || !csrPem) throw new OpenSSLCommandError('req', 0, 'did not print a private key, its public key and a request');
    const pair: KeyPair = { algorithm, privateKeyPem, publicKeyPem };
    this.keyRequests.set(pair, { privateKeyPem, csrPem });
    return pair;
  }

  async publicKeyOf(privateKeyPem: string): Promise<string> {
    return (await this.run(['pkey', '-pubout'], { input: privateKeyPem })).stdout.toString('utf8');
  }

  // -------------------------------------------------------------------------
  // Serial numbers: 128 random bits from `openssl rand`, positive, without a leading zero
  // byte. Drawn SERIAL_BATCH at a time, so a certificate does not cost an extra process; a
  // serial is public once issued and each is used once.

  private prefetchSerials(): void {
    if (this.serials.length < SERIAL_BATCH / 2) this.refillSerials().catch(() => undefined); // serialNumber() retries
  }

  private refillSerials(): Promise<void> {
    this.serialRefill ??= this.randomBytes(16 * SERIAL_BATCH)
      .then((bytes) => {
        for (let at = 0; at < bytes.length; at += 16) {
          const serial = bytes.subarray(at, at + 16);
          serial[0] = (serial[0]! & 0x7f) || 0x01;
          this.serials.push(serial.toString('hex').toUpperCase());
        }
      })
      .finally(() => {
        this.serialRefill = undefined;
      });
    return this.serialRefill;
  }

  private async serialNumber(): Promise<string> {
    for (;;) {
      const serial = this.serials.pop();
      if (serial) return serial;
      await this.refillSerials();
    }
  }

  // -------------------------------------------------------------------------
  // Certificates.
  //
  // `openssl ca` signs them, not `req -x509`/`x509 -req`: on OpenSSL 3.0 (Ubuntu 22.04/24.04,
  // Debian 12) it is the only command that sets exact notBefore/notAfter (-startdate/-enddate);
  // the others only know -days from now.

  /** One `openssl ca` in dir (which holds the signer's key file); the certificate comes back on stdout. */
  private async caSign(
    dir: string,
    input: { csrPem: string } | { selfSignedCertPem: string },
    template: CertificateTemplate,
    signer: { keyPath: string; key: KeyObject; certPem?: string },
  ): Promise<string> {
    await Promise.all([
      writeFile(path.join(dir, 'ca.cnf'), caConfig(template)),
      writeFile(path.join(dir, 'index.txt'), ''),
      this.serialNumber().then((serial) => writeFile(path.join(dir, 'serial'), serial + '\n')),
      'csrPem' in input ? writeFile(path.join(dir, 'req.csr'), input.csrPem) : writeFile(path.join(dir, 'subject.crt'), input.selfSignedCertPem),
      signer.certPem === undefined ? undefined : writeFile(path.join(dir, 'issuer.crt'), signer.certPem),
    ]);
    const args = [
      'ca', '-batch', '-config', 'ca.cnf', '-notext', '-utf8', '-preserveDN',
      '-subj', subjArg(template.subject),
      '-startdate', caDate(template.notBefore),
      '-enddate', caDate(template.notAfter),
      '-md', this.signingDigest(signer.key),
      '-extensions', 'v3',
      '-keyfile', signer.keyPath,
      ...(signer.certPem === undefined ? ['-selfsign'] : ['-cert', 'issuer.crt']),
      ...('csrPem' in input ? ['-in', 'req.csr'] : ['-ss_cert', 'subject.crt']),
    ];
    const { stdout, stderr } = await this.run(args, { cwd: dir });
    // `openssl ca` 3.0 exits 0 when it refuses a request whose signature does not match; the
    // missing certificate is the only sign.
    const pem = pemBlock(stdout.toString('utf8'), 'CERTIFICATE');
    if (!pem) throw new OpenSSLCommandError('ca', 0, openSSLErrorText(stderr) || 'no certificate was written');
    return pem;
  }

  async createCertificate(template: CertificateTemplate, subjectKey: KeyPair, issuer?: Issuer): Promise<string> {
    checkTemplate(template);
    const subject = this.approveKey(subjectKey.privateKeyPem, 'private');
    const signerKey = issuer ? this.approveKey(issuer.privateKeyPem, 'private') : subject;
    if (issuer) this.approveSignatureOf(issuer.certificatePem, 'issuer certificate');
    const made = this.keyRequests.get(subjectKey);
    const madeCsr = made?.privateKeyPem === subjectKey.privateKeyPem ? made.csrPem : undefined;
    return this.withTempDir(async (dir) => {
      // The subject key is needed on disk when it signs (self-signed: `openssl ca -selfsign`
      // checks it is the request's key) or when a request must first be made from it.
      const subjectKeyPath = !issuer || !madeCsr ? await this.writeSecret(dir, 'subject.key', subjectKey.privateKeyPem) : undefined;
      const csrPem =
        madeCsr ??
        (await this.run(['req', '-new', '-key', subjectKeyPath!, '-subj', KEY_REQUEST_SUBJECT, `-${this.signingDigest(subject)}`], { cwd: dir })).stdout.toString('utf8');
      if (!issuer) return this.caSign(dir, { csrPem }, template, { keyPath: subjectKeyPath!, key: subject });
      const signerKeyPath = await this.writeSecret(dir, 'issuer.key', issuer.privateKeyPem);
      return this.caSign(dir, { csrPem }, template, { keyPath: signerKeyPath, key: signerKey, certPem: issuer.certificatePem });
    });
  }

  /**
   * Needs a self-signed certificate (the CA-rotation case: a new root cross-signed by the old
   * one): `openssl ca -ss_cert` checks the self-signature, and without the subject's private
   * key no other openssl 3.0 command can set exact dates.
   */
  async crossSign(certificatePem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    checkTemplate(template);
    const signerKey = this.approveKey(issuer.privateKeyPem, 'private');
    this.approveKey(new X509Certificate(certificatePem).publicKey, 'public');
    this.approveSignatureOf(issuer.certificatePem, 'issuer certificate');
    return this.withTempDir(async (dir) => {
      const signerKeyPath = await this.writeSecret(dir, 'issuer.key', issuer.privateKeyPem);
      try {
        return await this.caSign(dir, { selfSignedCertPem: certificatePem }, template, { keyPath: signerKeyPath, key: signerKey, certPem: issuer.certificatePem });
      } catch (err) {
        if (err instanceof OpenSSLCommandError && /did not match/i.test(err.message)) {
          throw new CryptoError('the OpenSSL backend can cross-sign only self-signed certificates (openssl ca -ss_cert checks the self-signature)');
        }
        throw err;
      }
    });
  }

  async createCsr(subject: DistinguishedName, key: KeyPair, dnsNames: string[] = [], ipAddresses: string[] = []): Promise<string> {
    checkDn(subject);
    checkSans(dnsNames, ipAddresses);
    const keyObject = this.approveKey(key.privateKeyPem, 'private');
    return this.withTempDir(async (dir) => {
      const keyPath = await this.writeSecret(dir, 'csr.key', key.privateKeyPem);
      const san = sanValue(dnsNames, ipAddresses);
      const args = ['req', '-new', '-key', keyPath, '-subj', subjArg(subject), `-${this.signingDigest(keyObject)}`];
      if (san) args.push('-addext', `subjectAltName = ${san}`);
      return (await this.run(args, { cwd: dir })).stdout.toString('utf8');
    });
  }

  async parseCsr(csrPem: string): Promise<{ subject: DistinguishedName; dnsNames: string[]; ipAddresses: string[]; publicKeyPem: string }> {
    if (!csrPem.includes('BEGIN CERTIFICATE REQUEST')) throw new CryptoError('not a PEM certificate request');
    this.approveSignatureOf(csrPem, 'certificate request');
    let result: RunResult;
    try {
      result = await this.run(
        ['req', '-noout', '-verify', '-pubkey', '-subject', '-nameopt', NAMEOPT, '-text',
          '-reqopt', 'no_header,no_version,no_subject,no_pubkey,no_sigdump,no_signame'],
        { input: csrPem },
      );
    } catch (err) {
      if (err instanceof OpenSSLCommandError) throw new CryptoError(`not a valid certificate request: ${err.message}`);
      throw err;
    }
    // OpenSSL 3.0 exits 0 even when the self-signature does not verify.
    if (!/verify OK/.test(result.stderr)) throw new CryptoError('certificate request signature does not verify');
    const out = result.stdout.toString('utf8');
    const publicKeyPem = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----\n?/.exec(out)?.[0];
    if (!publicKeyPem) throw new CryptoError('certificate request has no readable public key');
    const lines = out.split('\n');
    const subjectAt = lines.findIndex((l) => l.startsWith('subject='));
    const subjectLines: string[] = [];
    for (let i = subjectAt + 1; subjectAt >= 0 && i < lines.length && /^\s+\S/.test(lines[i]!); i++) subjectLines.push(lines[i]!);
    const sanAt = lines.findIndex((l) => /X509v3 Subject Alternative Name:/.test(l));
    const sans = sanAt >= 0 ? (lines[sanAt + 1] ?? '').trim().split(/,\s*/) : [];
    if (this.fips) this.approveKey(publicKeyPem, 'public');
    return {
      subject: parseMultilineDn(subjectLines),
      dnsNames: sans.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
      ipAddresses: sans.filter((s) => s.startsWith('IP Address:')).map((s) => normaliseIp(s.slice(11))),
      publicKeyPem: publicKeyPem.endsWith('\n') ? publicKeyPem : publicKeyPem + '\n',
    };
  }

  /**
   * One `openssl ca`, which verifies the request's self-signature itself (and, on 3.0, writes
   * nothing but exits 0 when it does not verify); the policy checks on the request's key and
   * digest are made here first, from its DER.
   */
  async signCsr(csrPem: string, template: CertificateTemplate, issuer: Issuer): Promise<string> {
    checkTemplate(template);
    const spki = csrPem.includes('BEGIN CERTIFICATE REQUEST') ? csrPublicKeyDer(pemToDer(csrPem)) : undefined;
    if (!spki) throw new CryptoError('not a valid certificate request');
    this.approveSignatureOf(csrPem, 'certificate request');
    this.approveKey(parsePublicKeyDer(spki), 'public');
    const signerKey = this.approveKey(issuer.privateKeyPem, 'private');
    this.approveSignatureOf(issuer.certificatePem, 'issuer certificate');
    return this.withTempDir(async (dir) => {
      const signerKeyPath = await this.writeSecret(dir, 'issuer.key', issuer.privateKeyPem);
      try {
        return await this.caSign(dir, { csrPem }, template, { keyPath: signerKeyPath, key: signerKey, certPem: issuer.certificatePem });
      } catch (err) {
        if (err instanceof OpenSSLCommandError && /did not match the certificate request|Signature verification problems/i.test(err.message)) {
          throw new CryptoError('certificate request signature does not verify');
        }
        throw err;
      }
    });
  }

  /** Parsing is not a cryptographic operation, so node:crypto's X509Certificate does it in both backends. */
  parseCertificate(certificatePem: string): CertificateInfo {
    return parseCertificateInfo(certificatePem);
  }

  async verifyIssuedBy(certificatePem: string, issuerPem: string): Promise<boolean> {
    this.approveSignatureOf(certificatePem, 'certificate');
    return this.withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'cert.pem'), certificatePem);
      await writeFile(path.join(dir, 'issuer.pem'), issuerPem);
      // -partial_chain: the issuer need not be a root. -no_check_time: this asks "was it
      // signed by", not "is it valid now" (the Node backend answers the same question).
      try {
        const { stdout } = await this.run(['verify', '-partial_chain', '-no_check_time', '-CAfile', 'issuer.pem', 'cert.pem'], { cwd: dir });
        return /^cert\.pem: OK\s*$/m.test(stdout.toString('utf8'));
      } catch (err) {
        if (err instanceof OpenSSLCommandError) return false;
        throw err;
      }
    });
  }

  /** The key's public half from openssl, compared with the certificate's as parsed by X509Certificate. */
  async keyMatchesCertificate(privateKeyPem: string, certificatePem: string): Promise<boolean> {
    let fromCert: Buffer;
    try {
      fromCert = new X509Certificate(certificatePem).publicKey.export({ format: 'der', type: 'spki' });
    } catch {
      return false;
    }
    try {
      const fromKey = await this.publicKeyOf(privateKeyPem);
      return fromKey.includes('BEGIN PUBLIC KEY') && pemToDer(fromKey).equals(fromCert);
    } catch (err) {
      if (err instanceof OpenSSLCommandError) return false;
      throw err;
    }
  }

  // -------------------------------------------------------------------------
  // Hashes, randomness, signatures.

  /** Any digest by OpenSSL name; in FIPS mode non-approved ones are refused before OpenSSL runs. */
  async digest(algorithm: string, data: Buffer | string): Promise<Buffer> {
    if (this.fips) assertApproved({ digest: algorithm });
    if (!/^[A-Za-z0-9-]+$/.test(algorithm)) throw new CryptoError(`invalid digest name "${algorithm}"`);
    return (await this.run(['dgst', `-${algorithm.toLowerCase()}`, '-binary'], { input: data })).stdout;
  }

  async sha256(data: Buffer | string): Promise<Buffer> {
    return this.digest('sha256', data);
  }

  async randomBytes(length: number): Promise<Buffer> {
    if (!Number.isInteger(length) || length < 0 || length > 1 << 20) throw new CryptoError(`randomBytes length must be an integer from 0 to 1048576, not ${length}`);
    if (length === 0) return Buffer.alloc(0);
    const out = (await this.run(['rand', String(length)])).stdout;
    if (out.length !== length) throw new OpenSSLCommandError('rand', 0, `returned ${out.length} bytes instead of ${length}`);
    return out;
  }

  /** SHA-256 signature: ECDSA (DER) or RSA PKCS#1 v1.5, as the Node backend makes them. */
  async sign(privateKeyPem: string, data: Buffer): Promise<Buffer> {
    this.approveKey(privateKeyPem, 'private');
    return this.withTempDir(async (dir) => {
      const keyPath = await this.writeSecret(dir, 'sign.key', privateKeyPem);
      return (await this.run(['dgst', '-sha256', '-sign', keyPath], { input: data })).stdout;
    });
  }

  async verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean> {
    this.approveKey(publicKeyPem, 'public');
    return this.withTempDir(async (dir) => {
      await writeFile(path.join(dir, 'verify.pub'), publicKeyPem);
      await writeFile(path.join(dir, 'signature'), signature);
      try {
        const { stdout } = await this.run(['dgst', '-sha256', '-verify', 'verify.pub', '-signature', 'signature'], { cwd: dir, input: data });
        return /Verified OK/.test(stdout.toString('utf8'));
      } catch (err) {
        // dgst exits 1 for a signature that does not verify and for one that does not parse.
        if (err instanceof OpenSSLCommandError) return false;
        throw err;
      }
    });
  }

  // -------------------------------------------------------------------------
  // HMAC and AES-256-GCM.
  //
  // The openssl CLI cannot do these the way this interface needs: `openssl enc` refuses AEAD
  // ciphers (no GCM), and `openssl mac`/`dgst -hmac` take the key only on the command line,
  // where any local user can read it in /proc/<pid>/cmdline. So they run in Node's crypto,
  // and in FIPS mode only on Node's OpenSSL with the host's FIPS provider loaded (the same
  // module the CLI uses): in this process when it runs on the FIPS runtime (k8sd is re-executed
  // onto it), else in a child Node started with that runtime, the key passed over stdin.

  private async symmetric(op: SymmetricOp, key: Buffer, data: Buffer, aad?: Buffer): Promise<Buffer> {
    if (op !== 'hmac' && key.length !== 32) throw new CryptoError('AES-256-GCM needs a 32-byte key');
    if (op === 'decrypt' && data.length < 28) throw new CryptoError('ciphertext too short');
    if (!this.fips || getFips() === 1) {
      this.options.trace?.({ engine: 'node-in-process', command: op });
      if (op === 'hmac') return this.nodeSymmetric.hmacSha256(key, data);
      if (op === 'encrypt') return this.nodeSymmetric.encrypt(key, data, aad);
      return this.nodeSymmetric.decrypt(key, data, aad);
    }
    const runtime = this.options.nodeRuntime;
    if (!runtime) {
      throw new FipsUnavailableError(
        [`${op === 'hmac' ? 'HMAC' : 'AES-256-GCM'} needs Node on the FIPS provider: this process is not on the FIPS runtime and the OpenSSL backend was given no nodeRuntime`],
        [],
      );
    }
    this.options.trace?.({ engine: 'node-fips-child', command: op });
    const request = JSON.stringify({
      op,
      key: key.toString('base64'),
      data: data.toString('base64'),
      ...(aad ? { aad: aad.toString('base64') } : {}),
    });
    const result = await execa(this.options.nodeBinary ?? process.execPath, [...runtime.execArgv, '-e', SYMMETRIC_PROGRAM], {
      env: { ...process.env, NODE_OPTIONS: undefined, ...runtime.env },
      extendEnv: false,
      input: request,
      reject: false,
      timeout: this.options.timeoutMs ?? 120_000,
    });
    if (result.exitCode !== 0) {
      throw new FipsUnavailableError([`the FIPS Node runtime could not run ${op} (exit ${String(result.exitCode ?? result.signal)}): ${result.stderr.trim().split('\n')[0] ?? ''}`], []);
    }
    const reply = JSON.parse(result.stdout) as { ok: boolean; result?: string };
    if (!reply.ok || reply.result === undefined) throw new CryptoError('ciphertext failed authentication (wrong key or tampered data)');
    return Buffer.from(reply.result, 'base64');
  }

  async hmacSha256(key: Buffer, data: Buffer | string): Promise<Buffer> {
    return this.symmetric('hmac', key, Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'));
  }

  async encrypt(key: Buffer, plaintext: Buffer, aad?: Buffer): Promise<Buffer> {
    return this.symmetric('encrypt', key, plaintext, aad);
  }

  async decrypt(key: Buffer, sealed: Buffer, aad?: Buffer): Promise<Buffer> {
    return this.symmetric('decrypt', key, sealed, aad);
  }
}

/** OpenSSL's error lines without the noise (progress dots, "Using configuration from"). */
function openSSLErrorText(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^[.+*]+$/.test(l) && !l.startsWith('Using configuration from') && !l.startsWith('-----'));
  return lines.slice(0, 6).join(' | ').slice(0, 1500);
}
