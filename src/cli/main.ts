// Entry point of `k8s`.
import { execute } from '@oclif/core';

// FIPS mode (kernel flag, K8S_FIPS=1 or GOFIPS=1): re-run on the host FIPS provider, or refuse.
if (process.env.K8S_FIPS_RUNTIME !== '1' && (process.env.K8S_FIPS || process.env.GOFIPS || process.env.GODEBUG?.includes('fips140') || (await kernelFips()))) {
  const { Layout } = await import('../layout.js');
  const { fipsMode, reexecOnFipsRuntime } = await import('../crypto/fips-runtime.js');
  const { FipsUnavailableError } = await import('../crypto/fips.js');
  try {
    const layout = new Layout();
    await reexecOnFipsRuntime(await fipsMode(layout));
  } catch (err) {
    if (err instanceof FipsUnavailableError) {
      process.stderr.write(`k8s: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function kernelFips(): Promise<boolean> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile('/proc/sys/crypto/fips_enabled', 'utf8').catch(() => '0')).trim() === '1';
}

await execute({ dir: import.meta.url });
