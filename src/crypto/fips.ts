// FIPS mode: when it is on, where the host's FIPS provider is, how Node is relaunched
// onto it, and which algorithms are allowed.
//
// FIPS never degrades silently: once requested, every missing piece (provider module,
// active provider, working Node runtime) raises FipsUnavailableError naming that piece.
import { execa } from 'execa';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { TLS12_CIPHER_SUITES, TLS13_CIPHER_SUITES, goTlsSettings, type GoTlsSettings } from './tls.js';
import { CryptoError } from './types.js';

/** The kernel's FIPS switch (Ubuntu Pro fips-updates sets it to 1 after reboot). */
export const KERNEL_FIPS_ENABLED_PATH = '/proc/sys/crypto/fips_enabled';

export class FipsUnavailableError extends Error {
  /** What is missing, one item per problem, each naming the file, provider or check. */
  readonly missing: string[];

  constructor(missing: string[], requestedBy: string[]) {
    const why = requestedBy.length ? ` (requested by ${requestedBy.join(', ')})` : '';
    super(
      `FIPS mode is requested${why} but not available: ${missing.join('; ')}. ` +
        'Refusing to run without FIPS. Prepare the host as docs/fips.md describes ' +
        '(Ubuntu Pro fips-updates, or OPENSSL_MODULES/OPENSSL_CONF pointing at a FIPS provider), or turn FIPS mode off.',
    );
    this.name = 'FipsUnavailableError';
    this.missing = missing;
  }
}

/** An algorithm, key, cipher or TLS version that FIPS mode does not allow. */
export class FipsPolicyError extends CryptoError {
  constructor(message: string) {
    super(`FIPS policy: ${message}`);
    this.name = 'FipsPolicyError';
  }
}

// ---------------------------------------------------------------------------
// Is FIPS requested?

export interface FipsDetectOptions {
  /** Defaults to process.env. K8S_FIPS=1 (the snap's fips=true), GOFIPS=1 and GODEBUG fips140=on|only request FIPS. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to KERNEL_FIPS_ENABLED_PATH; tests point it at a file. */
  fipsEnabledPath?: string;
  /** The bootstrap/join `fips` setting. `false` cannot turn off a FIPS kernel. */
  setting?: boolean;
}

export interface FipsRequest {
  requested: boolean;
  /** Human-readable reasons, e.g. "kernel (/proc/sys/crypto/fips_enabled = 1)". Empty when not requested. */
  requestedBy: string[];
}

function envFlagOn(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true', 'yes', 'on'].includes(value.trim().toLowerCase());
}

function godebugRequestsFips(godebug: string | undefined): boolean {
  return (godebug ?? '').split(',').some((kv) => ['fips140=on', 'fips140=only'].includes(kv.trim()));
}

export async function detectFipsRequest(options: FipsDetectOptions = {}): Promise<FipsRequest> {
  const env = options.env ?? process.env;
  const fipsEnabledPath = options.fipsEnabledPath ?? KERNEL_FIPS_ENABLED_PATH;
  const requestedBy: string[] = [];
  let kernel = '';
  try {
    kernel = (await readFile(fipsEnabledPath, 'utf8')).trim();
  } catch {
    // No such file: a kernel without FIPS support, which is the same as 0.
  }
  if (kernel === '1') requestedBy.push(`kernel (${fipsEnabledPath} = 1)`);
  if (envFlagOn(env.K8S_FIPS)) requestedBy.push('K8S_FIPS=1');
  if (envFlagOn(env.GOFIPS)) requestedBy.push('GOFIPS=1');
  if (godebugRequestsFips(env.GODEBUG)) requestedBy.push(`GODEBUG=${env.GODEBUG ?? ''}`);
  if (options.setting === true) requestedBy.push('the fips: true setting');
  return { requested: requestedBy.length > 0, requestedBy };
}

// ---------------------------------------------------------------------------
// The host OpenSSL and its providers.

/** How to run the host openssl binary: the binary and the OpenSSL variables it sees. */
export interface OpenSSLTool {
  binary: string;
  /** OPENSSL_CONF and OPENSSL_MODULES when set; absent ones fall back to OpenSSL's built-in defaults. */
  env: { OPENSSL_CONF?: string; OPENSSL_MODULES?: string };
}

export function openSSLToolFromEnv(env: NodeJS.ProcessEnv = process.env, binary = 'openssl'): OpenSSLTool {
  const vars: OpenSSLTool['env'] = {};
  if (env.OPENSSL_CONF) vars.OPENSSL_CONF = env.OPENSSL_CONF;
  if (env.OPENSSL_MODULES) vars.OPENSSL_MODULES = env.OPENSSL_MODULES;
  return { binary, env: vars };
}

interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function runTool(tool: OpenSSLTool, args: string[]): Promise<ToolResult> {
  // Variables the tool does not set are removed, so a stray OPENSSL_CONF in our own
  // environment cannot change what the check sees.
  const env: NodeJS.ProcessEnv = { ...process.env, OPENSSL_CONF: undefined, OPENSSL_MODULES: undefined, ...tool.env };
  const result = await execa(tool.binary, args, { env, extendEnv: false, reject: false, timeout: 30_000 });
  if (result.failed && result.exitCode === undefined) {
    throw new FipsUnavailableError([`the openssl binary "${tool.binary}" could not be run (${result.shortMessage})`], []);
  }
  return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
}

export interface OpenSSLProvider {
  /** Provider id in the configuration, e.g. "fips", "base", "default". */
  id: string;
  name?: string;
  version?: string;
  buildInfo?: string;
  status?: string;
}

/** Parses `openssl list -providers [-verbose]`. */
export function parseProviderList(output: string): OpenSSLProvider[] {
  const providers: OpenSSLProvider[] = [];
  let current: OpenSSLProvider | undefined;
  for (const line of output.split('\n')) {
    const id = /^ {2}(\S+)\s*$/.exec(line);
    if (id) {
      current = { id: id[1]! };
      providers.push(current);
      continue;
    }
    const field = /^ {4}(name|version|status|build info):\s*(.*?)\s*$/.exec(line);
    if (field && current) {
      const [, key, value] = field;
      if (key === 'name') current.name = value;
      else if (key === 'version') current.version = value;
      else if (key === 'status') current.status = value;
      else current.buildInfo = value;
    }
  }
  return providers;
}

export async function listProviders(tool: OpenSSLTool, verbose = false): Promise<OpenSSLProvider[]> {
  const result = await runTool(tool, ['list', '-providers', ...(verbose ? ['-verbose'] : [])]);
  if (result.exitCode !== 0) {
    throw new FipsUnavailableError(
      [`"${tool.binary} list -providers" failed (exit ${result.exitCode}): ${firstLines(result.stderr)}${describeEnv(tool)}`],
      [],
    );
  }
  return parseProviderList(result.stdout);
}

function isFipsProvider(p: OpenSSLProvider): boolean {
  return p.id === 'fips' || /\bFIPS\b/i.test(p.name ?? '');
}

export interface FipsProviderInfo {
  name: string;
  version: string;
  buildInfo?: string;
  active: boolean;
}

/** The FIPS provider as the host OpenSSL reports it (for `k8s status`); undefined when there is none. */
export async function providerInfo(tool: OpenSSLTool = openSSLToolFromEnv()): Promise<FipsProviderInfo | undefined> {
  const fips = (await listProviders(tool, true)).find(isFipsProvider);
  if (!fips) return undefined;
  const info: FipsProviderInfo = {
    name: fips.name ?? fips.id,
    version: fips.version ?? 'unknown',
    active: fips.status === 'active',
  };
  if (fips.buildInfo) info.buildInfo = fips.buildInfo;
  return info;
}

export interface FipsProviderLocation {
  /** The directory OpenSSL loads providers from (OPENSSL_MODULES, else the built-in MODULESDIR). */
  modulesDir: string;
  /** <modulesDir>/fips.so */
  modulePath: string;
  /** The host openssl.cnf (OPENSSL_CONF, else OPENSSLDIR/openssl.cnf). */
  hostConfigPath?: string;
  /**
   * The fipsmodule.cnf written by `openssl fipsinstall` for that module, with its section
   * name (normally fips_sect). Absent when the host config carries the module settings
   * inline; Node then reads the host config itself (--openssl-shared-config).
   */
  moduleConfig?: { path: string; section: string };
}

/** `openssl version -m` → MODULESDIR; `-d` → OPENSSLDIR. */
async function opensslBuiltinDir(tool: OpenSSLTool, flag: '-m' | '-d', key: string): Promise<string | undefined> {
  const result = await runTool(tool, ['version', flag]);
  if (result.exitCode !== 0) return undefined;
  const match = new RegExp(`${key}:\\s*"([^"]*)"`).exec(result.stdout);
  return match?.[1];
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** The section name of a fipsinstall output, or undefined when the file is not one. */
async function fipsModuleSection(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  if (!/^\s*module-mac\s*=/m.test(text)) return undefined;
  return /^\s*\[\s*([^\]\s]+)\s*\]/m.exec(text)?.[1] ?? 'fips_sect';
}

/** Files named by `.include` lines of an OpenSSL config (directories are expanded to their *.cnf/*.conf). */
async function configIncludes(configPath: string, baseDirs: string[]): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*\.include\s*=?\s*(.+?)\s*$/gm)) {
    const target = match[1]!;
    const candidates = path.isAbsolute(target) ? [target] : baseDirs.map((d) => path.join(d, target));
    for (const candidate of candidates) {
      try {
        const st = await stat(candidate);
        if (st.isFile()) found.push(candidate);
        else if (st.isDirectory()) {
          for (const entry of (await readdir(candidate)).sort()) {
            if (/\.(cnf|conf)$/.test(entry)) found.push(path.join(candidate, entry));
          }
        }
      } catch {
        // An include that does not exist is OpenSSL's problem to report, not ours.
      }
    }
  }
  return found;
}

/**
 * Finds the FIPS provider the way OpenSSL does: OPENSSL_MODULES, else the built-in
 * modules directory; its fipsmodule.cnf from the active config's .include lines, else
 * next to OPENSSL_CONF, in OPENSSLDIR or in the modules directory.
 */
export async function locateFipsProvider(tool: OpenSSLTool): Promise<FipsProviderLocation> {
  const modulesDir = tool.env.OPENSSL_MODULES ?? (await opensslBuiltinDir(tool, '-m', 'MODULESDIR'));
  if (!modulesDir) {
    throw new FipsUnavailableError([`cannot tell where "${tool.binary}" loads providers from (set OPENSSL_MODULES)`], []);
  }
  const modulePath = path.join(modulesDir, 'fips.so');
  if (!(await isFile(modulePath))) {
    throw new FipsUnavailableError([`no FIPS provider module at ${modulePath}`], []);
  }

  const opensslDir = await opensslBuiltinDir(tool, '-d', 'OPENSSLDIR');
  const configPath = tool.env.OPENSSL_CONF ?? (opensslDir ? path.join(opensslDir, 'openssl.cnf') : undefined);
  const baseDirs = [configPath ? path.dirname(configPath) : undefined, opensslDir].filter((d): d is string => Boolean(d));
  const candidates = [
    ...(configPath ? await configIncludes(configPath, baseDirs) : []),
    ...baseDirs.map((d) => path.join(d, 'fipsmodule.cnf')),
    path.join(modulesDir, 'fipsmodule.cnf'),
  ];
  const location: FipsProviderLocation = { modulesDir, modulePath };
  if (configPath) location.hostConfigPath = configPath;
  for (const candidate of candidates) {
    const section = await fipsModuleSection(candidate);
    if (section) return { ...location, moduleConfig: { path: path.resolve(candidate), section } };
  }
  if (configPath && (await fipsModuleSection(configPath))) return location;
  throw new FipsUnavailableError(
    [`no fipsmodule.cnf for ${modulePath} (looked in: ${[...new Set([...candidates, ...(configPath ? [configPath] : [])])].join(', ')}); run "openssl fipsinstall -module ${modulePath} -out <dir>/fipsmodule.cnf"`],
    [],
  );
}

/** Throws unless the host openssl, with the tool's environment, reports an active FIPS provider. */
export async function assertFipsProviderActive(tool: OpenSSLTool): Promise<OpenSSLProvider> {
  const providers = await listProviders(tool);
  const fips = providers.find(isFipsProvider);
  if (!fips) {
    const loaded = providers.map((p) => p.id).join(', ') || 'none';
    throw new FipsUnavailableError(
      [`the FIPS provider is not active in the host OpenSSL (loaded providers: ${loaded})${describeEnv(tool)}; its openssl.cnf must activate fips`],
      [],
    );
  }
  if (fips.status !== undefined && fips.status !== 'active') {
    throw new FipsUnavailableError([`the FIPS provider is loaded but its status is "${fips.status}"${describeEnv(tool)}`], []);
  }
  return fips;
}

// ---------------------------------------------------------------------------
// Relaunching Node on the FIPS provider.

/** How k8sd and the CLI re-exec Node so its bundled OpenSSL loads the host's FIPS provider. */
export interface NodeFipsRuntime {
  configPath: string;
  modulesDir: string;
  env: { OPENSSL_CONF: string; OPENSSL_MODULES: string };
  /** Node flags, before the script: --openssl-config wins over OPENSSL_CONF; --force-fips forbids setFips(false). */
  execArgv: string[];
  /** The same flags for NODE_OPTIONS (children that are started by other tools). */
  nodeOptions: string;
}

const NODE_FIPS_CONFIG_FILE = 'node-fips.cnf';

/**
 * The OpenSSL config for Node. Node reads only the nodejs_conf section (unless started with
 * --openssl-shared-config), so the host's openssl.cnf is not enough on its own; openssl_conf
 * is set too so the same file serves the openssl CLI.
 */
export function nodeFipsConfig(moduleConfig: { path: string; section: string }): string {
  return [
    '# Written by k8sd: runs Node on the host FIPS provider. Regenerated at start; do not edit.',
    'nodejs_conf = k8s_fips_init',
    'openssl_conf = k8s_fips_init',
    '',
    `.include ${moduleConfig.path}`,
    '',
    '[k8s_fips_init]',
    'providers = k8s_fips_providers',
    'alg_section = k8s_fips_algorithms',
    '',
    '[k8s_fips_providers]',
    `fips = ${moduleConfig.section}`,
    'base = k8s_fips_base',
    '',
    '[k8s_fips_base]',
    'activate = 1',
    '',
    '[k8s_fips_algorithms]',
    'default_properties = fips=yes',
    '',
  ].join('\n');
}

function quoteNodeOption(value: string): string {
  return /[\s"\\]/.test(value) ? `"${value.replace(/(["\\])/g, '\\$1')}"` : value;
}

/**
 * Writes <dir>/node-fips.cnf and returns the settings to relaunch Node with. When the host
 * has no separate fipsmodule.cnf (its openssl.cnf carries the module settings inline), Node
 * is pointed at the host config itself with --openssl-shared-config, so it loads exactly
 * what the host openssl loads; the self-test then checks that this restricts Node to FIPS.
 */
export async function writeNodeFipsRuntime(location: FipsProviderLocation, dir: string): Promise<NodeFipsRuntime> {
  let configPath: string;
  let execArgv: string[];
  if (location.moduleConfig) {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    configPath = path.resolve(dir, NODE_FIPS_CONFIG_FILE);
    // Holds paths only, no secrets.
    await writeFile(configPath, nodeFipsConfig(location.moduleConfig), { mode: 0o644 });
    execArgv = [`--openssl-config=${configPath}`, '--force-fips'];
  } else if (location.hostConfigPath) {
    configPath = location.hostConfigPath;
    execArgv = [`--openssl-config=${configPath}`, '--openssl-shared-config', '--force-fips'];
  } else {
    throw new FipsUnavailableError([`no OpenSSL configuration for the FIPS provider at ${location.modulePath}`], []);
  }
  return {
    configPath,
    modulesDir: location.modulesDir,
    env: { OPENSSL_CONF: configPath, OPENSSL_MODULES: location.modulesDir },
    execArgv,
    nodeOptions: execArgv.map(quoteNodeOption).join(' '),
  };
}

/** True when this very process was started with the runtime's flags and Node reports FIPS. */
export async function runningOnFipsRuntime(runtime: NodeFipsRuntime): Promise<boolean> {
  const { getFips } = await import('node:crypto');
  return process.execArgv.includes(runtime.execArgv[0]!) && getFips() === 1;
}

export interface NodeSelfTest {
  getFips: number;
  sha256: boolean;
  md5Refused: boolean;
  ecdsaP256: boolean;
}

// getFips() alone proves nothing: with no provider loaded it still returns 1 and every
// algorithm fails (nodejs/node#55937). The probe checks real behaviour instead.
const SELF_TEST_PROGRAM = `
const c = require('node:crypto');
const r = { getFips: c.getFips(), sha256: false, md5Refused: false, ecdsaP256: false };
try { r.sha256 = c.createHash('sha256').update('abc').digest('hex') === 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'; } catch {}
try { c.createHash('md5').update('k8s').digest(); } catch { r.md5Refused = true; }
try { c.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }); r.ecdsaP256 = true; } catch {}
process.stdout.write(JSON.stringify(r));
`;

/** Runs the probe in a child Node on the runtime; throws FipsUnavailableError naming the failed check. */
export async function selfTestNodeRuntime(runtime: NodeFipsRuntime, nodeBinary: string = process.execPath): Promise<NodeSelfTest> {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: undefined, ...runtime.env };
  const result = await execa(nodeBinary, [...runtime.execArgv, '-e', SELF_TEST_PROGRAM], {
    env,
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  });
  if (result.exitCode !== 0) {
    throw new FipsUnavailableError(
      [`Node (${nodeBinary}) does not start on the FIPS configuration ${runtime.configPath} (exit ${String(result.exitCode ?? result.signal)}): ${firstLines(result.stderr)}`],
      [],
    );
  }
  let probe: NodeSelfTest;
  try {
    probe = JSON.parse(result.stdout) as NodeSelfTest;
  } catch {
    throw new FipsUnavailableError([`the Node FIPS self-test printed no result: ${firstLines(result.stdout + result.stderr)}`], []);
  }
  const failures: string[] = [];
  if (!probe.sha256) failures.push('self-test: SHA-256 does not work under the FIPS provider (provider not loaded?)');
  if (!probe.ecdsaP256) failures.push('self-test: ECDSA P-256 key generation does not work under the FIPS provider');
  if (!probe.md5Refused) failures.push('self-test: MD5 succeeded, so Node is not restricted to the FIPS provider');
  if (probe.getFips !== 1) failures.push(`self-test: crypto.getFips() is ${probe.getFips}, not 1`);
  if (failures.length) throw new FipsUnavailableError(failures, []);
  return probe;
}

// ---------------------------------------------------------------------------
// Putting it together.

export interface FipsResolveOptions extends FipsDetectOptions {
  /** The host openssl; defaults to `openssl` with OPENSSL_CONF/OPENSSL_MODULES from env. */
  openssl?: OpenSSLTool;
  /** Where to write node-fips.cnf (a k8sd state or config directory). */
  runtimeDir: string;
  /** The Node binary to self-test; defaults to this process's. */
  nodeBinary?: string;
}

export interface FipsDisabled {
  enabled: false;
  request: FipsRequest;
}

export interface FipsEnabled {
  enabled: true;
  request: FipsRequest;
  /** The host openssl as the OpenSSL backend must run it. */
  openssl: OpenSSLTool;
  location: FipsProviderLocation;
  provider: FipsProviderInfo;
  runtime: NodeFipsRuntime;
  nodeBinary: string;
  selfTest: NodeSelfTest;
}

export type FipsMode = FipsDisabled | FipsEnabled;

/**
 * Decides whether FIPS is on and, when it is, proves that it works: provider module,
 * active provider, Node runtime config, Node self-test. Any gap throws FipsUnavailableError.
 */
export async function resolveFipsMode(options: FipsResolveOptions): Promise<FipsMode> {
  const request = await detectFipsRequest(options);
  if (!request.requested) return { enabled: false, request };
  const openssl = options.openssl ?? openSSLToolFromEnv(options.env ?? process.env);
  const nodeBinary = options.nodeBinary ?? process.execPath;
  try {
    const location = await locateFipsProvider(openssl);
    await assertFipsProviderActive(openssl);
    const provider = await providerInfo(openssl);
    if (!provider) throw new FipsUnavailableError(['the FIPS provider disappeared from "openssl list -providers -verbose"'], []);
    const runtime = await writeNodeFipsRuntime(location, options.runtimeDir);
    const selfTest = await selfTestNodeRuntime(runtime, nodeBinary);
    return { enabled: true, request, openssl, location, provider, runtime, nodeBinary, selfTest };
  } catch (err) {
    // Re-raise with the reasons FIPS was requested, so the message says why it matters.
    if (err instanceof FipsUnavailableError) throw new FipsUnavailableError(err.missing, request.requestedBy);
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Policy.

export interface AlgorithmUse {
  /** e.g. "ecdsa-p256", "rsa-2048", "rsa-1024", "ed25519". */
  keyAlgorithm?: string;
  /** e.g. "sha256", "SHA-1", "md5". */
  digest?: string;
  /** e.g. "aes-256-gcm", "chacha20-poly1305", or a TLS suite name (Go or OpenSSL). */
  cipher?: string;
  /** e.g. "TLSv1.2", "1.3", "VersionTLS12". */
  tlsVersion?: string;
}

const APPROVED_KEYS = 'ECDSA P-256/P-384 or RSA of at least 2048 bits';

function checkKey(keyAlgorithm: string): void {
  const k = keyAlgorithm.trim().toLowerCase();
  const rsa = /^rsa[-_ ]?(\d+)$/.exec(k);
  if (rsa) {
    const bits = Number(rsa[1]);
    if (bits < 2048) throw new FipsPolicyError(`RSA keys must be at least 2048 bits; this one has ${bits}`);
    return;
  }
  if (/^(ecdsa|ec)?[-_ ]?(p-?256|prime256v1|secp256r1|p-?384|secp384r1)$/.test(k)) return;
  if (/^(ed25519|ed448)$/.test(k)) {
    throw new FipsPolicyError(
      `${keyAlgorithm} keys are not accepted: the Go FIPS TLS policy the Kubernetes components enforce rejects EdDSA; use ${APPROVED_KEYS}`,
    );
  }
  if (/p-?521|secp521r1/.test(k)) {
    throw new FipsPolicyError(`P-521 keys are not accepted: the Go FIPS TLS policy allows only P-256 and P-384; use ${APPROVED_KEYS}`);
  }
  throw new FipsPolicyError(`key algorithm "${keyAlgorithm}" is not allowed; use ${APPROVED_KEYS}`);
}

const APPROVED_DIGESTS = new Set(['sha224', 'sha256', 'sha384', 'sha512', 'sha512-224', 'sha512-256', 'sha3-224', 'sha3-256', 'sha3-384', 'sha3-512']);

function checkDigest(digest: string): void {
  const d = digest.trim().toLowerCase().replace(/^sha-(?=\d)/, 'sha').replace(/_/g, '-');
  if (APPROVED_DIGESTS.has(d)) return;
  if (d === 'sha1' || d === 'sha-1') {
    throw new FipsPolicyError(`SHA-1 is not allowed for signatures or certificates; use SHA-256 or SHA-384`);
  }
  if (d === 'md5' || d === 'md4') throw new FipsPolicyError(`${digest.toUpperCase()} is not a FIPS-approved digest; use SHA-256`);
  throw new FipsPolicyError(`digest "${digest}" is not FIPS-approved; use SHA-256, SHA-384 or SHA-512`);
}

const APPROVED_TLS_SUITES = new Set(
  [...TLS12_CIPHER_SUITES.flatMap((s) => [s.go, s.openssl]), ...TLS13_CIPHER_SUITES].map((s) => s.toLowerCase()),
);

function checkCipher(cipher: string): void {
  const c = cipher.trim().toLowerCase();
  if (/chacha20/.test(c)) {
    throw new FipsPolicyError(`${cipher} is not allowed: ChaCha20-Poly1305 is not FIPS-approved; use AES-GCM`);
  }
  if (/^(id-)?aes-?(128|192|256)-(gcm|ccm|cbc|ctr|wrap|wrap-pad)$/.test(c)) return;
  if (APPROVED_TLS_SUITES.has(c)) return;
  throw new FipsPolicyError(
    `cipher "${cipher}" is not allowed; use AES-GCM (TLS: ${TLS12_CIPHER_SUITES.map((s) => s.go).join(', ')}, ${TLS13_CIPHER_SUITES.join(', ')})`,
  );
}

function checkTlsVersion(version: string): void {
  // Accepts Node ("TLSv1.2"), Go ("VersionTLS12"), etcd ("TLS1.2") and bare ("1.2") spellings.
  const v = version.trim().toLowerCase().replace(/^versiontls1(\d)$/, '1.$1').replace(/^tlsv?/, '');
  if (v === '1.2' || v === '1.3') return;
  if (['1', '1.0', '1.1', 'sslv2', 'sslv3', 'ssl3', 'ssl2'].includes(v)) {
    throw new FipsPolicyError(`${version} is not allowed: FIPS mode needs TLS 1.2 or newer`);
  }
  throw new FipsPolicyError(`unknown TLS version "${version}"; use TLS 1.2 or TLS 1.3`);
}

/** Throws FipsPolicyError for anything FIPS mode does not allow; returns quietly otherwise. */
export function assertApproved(use: AlgorithmUse): void {
  if (use.keyAlgorithm !== undefined) checkKey(use.keyAlgorithm);
  if (use.digest !== undefined) checkDigest(use.digest);
  if (use.cipher !== undefined) checkCipher(use.cipher);
  if (use.tlsVersion !== undefined) checkTlsVersion(use.tlsVersion);
}

// ---------------------------------------------------------------------------
// Go components.

export interface GoFipsSettings {
  /** Runtime environment for every Go component in FIPS mode. */
  env: { GODEBUG: string };
  /**
   * Build-time setting the component recipes must use so the binaries carry the Go
   * Cryptographic Module (Go 1.24+). Informational here: it cannot be changed at run time.
   */
  build: { GOFIPS140: string; note: string };
  tls: GoTlsSettings;
}

export const GO_FIPS_BUILD_SETTING = 'v1.0.0';

/** GODEBUG with fips140=on merged into an existing value (other settings kept, an older fips140 replaced). */
export function goFipsSettings(existingGodebug = ''): GoFipsSettings {
  const kept = existingGodebug
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s && !s.startsWith('fips140='));
  return {
    env: { GODEBUG: [...kept, 'fips140=on'].join(',') },
    build: {
      GOFIPS140: GO_FIPS_BUILD_SETTING,
      note:
        'Go binaries are built with GOFIPS140=' + GO_FIPS_BUILD_SETTING +
        ' to embed the frozen Go Cryptographic Module; GODEBUG=fips140=on then enforces it at run time. ' +
        'Binaries built without it run the default module and only approximate FIPS.',
    },
    tls: goTlsSettings(),
  };
}

// ---------------------------------------------------------------------------

function firstLines(text: string, lines = 3): string {
  const trimmed = text.trim().split('\n').slice(0, lines).join(' | ');
  return trimmed || '(no output)';
}

function describeEnv(tool: OpenSSLTool): string {
  const parts = Object.entries(tool.env).map(([k, v]) => `${k}=${v}`);
  return parts.length ? ` [with ${parts.join(' ')}]` : '';
}

