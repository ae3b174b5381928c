// FIPS mode at process start-up, shared by k8s and k8sd: whether it is on, and re-running this
// process on the host FIPS provider when it is.
import { spawn } from 'node:child_process';
import { FipsMode, resolveFipsMode, runningOnFipsRuntime } from './fips.js';
import { Layout } from '../layout.js';

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
