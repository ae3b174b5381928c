// Entry point of `k8sd`: runs the daemon in the foreground until SIGTERM/SIGINT.
import { K8sd } from './daemon.js';
import { Layout } from '../layout.js';
import { fipsMode, reexecOnFipsRuntime } from './runtime.js';
import { FipsUnavailableError } from '../crypto/fips.js';

// FIPS requested: check the provider and re-run on it before anything else, or refuse to start.
try {
  await reexecOnFipsRuntime(await fipsMode(new Layout()));
} catch (err) {
  if (err instanceof FipsUnavailableError) {
    process.stderr.write(`k8sd: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const daemon = new K8sd();
let exiting = false;
const shutdown = (signal: string): void => {
  if (exiting) return;
  exiting = true;
  daemon.log.info('received signal', { signal });
  daemon
    .stop()
    .then(() => process.exit(0))
    .catch((err: Error) => {
      daemon.log.error('error while stopping', { error: err.message });
      process.exit(1);
    });
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('unhandledRejection', (err) => daemon.log.error('unhandled rejection', { error: String(err) }));

daemon.start().catch((err: Error) => {
  daemon.log.error('k8sd failed to start', { error: err.message });
  process.exit(1);
});
