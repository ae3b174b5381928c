// Process start-up: decides FIPS mode, re-executes Node on the host FIPS provider when
// needed, and picks the crypto backend (Node by default, host OpenSSL in FIPS mode).
import { spawn } from 'node:child_process';
import { NodeCryptoBackend } from '../crypto/node.js';
import { OpenSSLCryptoBackend } from '../crypto/openssl.js';
import { FipsMode, resolveFipsMode, runningOnFipsRuntime } from '../crypto/fips.js';
import { withCryptoAudit } from '../crypto/audit.js';
import { CryptoBackend } from '../crypto/types.js';
import { Layout } from '../layout.js';
import { Logger } from '../log.js';

const REEXEC_MARK = 'K8S_FIPS_RUNTIME';

export async function fipsMode(layout: Layout): Promise<FipsMode> {
  return resolveFipsMode({ runtimeDir: layout.fipsRuntimeDir });
}

/**
 * In FIPS mode, a process not yet on the FIPS runtime re-runs itself with Node's OpenSSL
 * bound to the host FIPS provider, forwards signals, and exits with the child's code.
 * Returns false when this process should carry on (normal mode, or already re-executed).
 */
export async function reexecOnFipsRuntime(mode: FipsMode): Promise<boolean> {
  if (!mode.enabled) return false;
  if (process.env[REEXEC_MARK] === '1' || (await runningOnFipsRuntime(mode.runtime))) return false;
  const child = spawn(mode.nodeBinary, [...mode.runtime.execArgv, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, ...mode.runtime.env, [REEXEC_MARK]: '1' },
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 128 : 1))));
  process.exit(code);
}

export function createCryptoBackend(mode: FipsMode, log: Logger): CryptoBackend {
  const backend: CryptoBackend = mode.enabled
    ? new OpenSSLCryptoBackend({ fips: true, binary: mode.openssl.binary, env: mode.openssl.env, nodeRuntime: mode.runtime, nodeBinary: mode.nodeBinary })
    : new NodeCryptoBackend();
  // K8S_CRYPTO_AUDIT=1: a debug record of every crypto operation and the backend that ran it.
  return withCryptoAudit(backend, (e) => log.debug('crypto operation', { ...e }));
}
