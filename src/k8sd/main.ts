// Entry point of `k8sd`: runs the daemon in the foreground until SIGTERM/SIGINT.
import { K8sd } from './daemon.js';

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
