// Entry point of `k8sd`: runs the daemon in the foreground until SIGTERM/SIGINT.
import { K8sd } from './daemon.js';
import { Layout } from '../layout.js';
import { fipsMode, reexecOnFipsRuntime } from './runtime.js';
import { FipsUnavailableError } from '../crypto/fips.js';

// Asked for help or its version, k8sd answers and exits: it never starts a daemon by surprise.
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(
    [
      'k8sd: the k8s node daemon. Runs in the foreground until SIGTERM or SIGINT and serves the k8s CLI',
      'on its unix socket (<common>/var/lib/k8sd/state/control.socket).',
      '',
      'USAGE',
      '  k8sd              (in the snap: snap start k8s.k8sd; in a dev install: npm start)',
      '  k8sd --version',
      '',
      'ENVIRONMENT',
      '  K8S_ROOT          host root the node lives under (default /)',
      '  SNAP, SNAP_COMMON the snap install and its data directory (set by snapd)',
      '  K8S_NODE_NAME     node name (default: the host name)',
      '  K8S_LOG_LEVEL     log level (default info)',
      '  K8S_FIPS=1        run in FIPS mode (also on when /proc/sys/crypto/fips_enabled is 1)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
if (argv.includes('--version')) {
  const { readFileSync } = await import('node:fs');
  const { installRoot } = await import('../layout.js');
  const pkg = JSON.parse(readFileSync(`${installRoot}/package.json`, 'utf8')) as { version: string };
  process.stdout.write(`k8sd ${pkg.version}\n`);
  process.exit(0);
}

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
