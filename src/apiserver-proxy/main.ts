// Entry point of `k8s-apiserver-proxy --listen=127.0.0.1:6443 --endpoints=<file> [--refresh-interval=15s]`.
import { createLogger } from '../log.js';
import { ApiserverProxy } from './proxy.js';

function flag(argv: string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  const hit = argv.find((a) => a.startsWith(prefix));
  if (hit) return hit.slice(prefix.length);
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function seconds(text: string): number {
  const m = /^(\d+)(s|m)?$/.exec(text);
  if (!m) throw new Error(`--refresh-interval: "${text}" is not a duration such as 15s or 1m`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

// k8sd recognises a proxy left running by a crashed k8sd by this name (/proc/<pid>/cmdline).
process.title = 'k8s-apiserver-proxy';
const log = createLogger('k8s-apiserver-proxy');
const argv = process.argv.slice(2);
try {
  const listen = flag(argv, 'listen') ?? '127.0.0.1:6443';
  const endpointsFile = flag(argv, 'endpoints');
  if (!endpointsFile) throw new Error('--endpoints=<file> is required (k8sd writes $SNAP_COMMON/args/conf.d/k8s-apiserver-proxy.json)');
  const m = /^(?:\[(.+)\]|([^:]*)):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: "${listen}" is not host:port`);
  const refresh = Math.max(15, seconds(flag(argv, 'refresh-interval') ?? '30s'));
  const proxy = new ApiserverProxy({ listenHost: m[1] ?? (m[2] || '0.0.0.0'), listenPort: Number(m[3]), endpointsFile, refreshMs: refresh * 1000, log });
  await proxy.start();
  const stop = (signal: string): void => {
    log.info('stopping', { signal });
    void proxy.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  log.error('k8s-apiserver-proxy failed to start', { error: (err as Error).message });
  process.exit(1);
}
