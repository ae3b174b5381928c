// k8s-apiserver-proxy: a small TCP load balancer in front of the control-plane API servers.
// Workers talk to https://127.0.0.1:6443 and this proxy forwards each connection to a healthy
// API server. TLS passes through untouched (the kubelet verifies the apiserver certificate,
// whose SANs include 127.0.0.1). Endpoints come from a JSON file that k8sd keeps current.
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface ProxyLogger {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

export interface ProxyOptions {
  listenHost: string;
  listenPort: number;
  endpointsFile: string;
  /** How often the endpoints file is re-read. */
  refreshMs: number;
  /** How often each endpoint is probed with a TCP connect. */
  healthIntervalMs?: number;
  connectTimeoutMs?: number;
  log: ProxyLogger;
}

interface Backend {
  address: string;
  host: string;
  port: number;
  healthy: boolean;
  failures: number;
}

export class EndpointsFileError extends Error {
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}; expected {"endpoints": ["10.0.0.5:6443", ...]}`);
    this.name = 'EndpointsFileError';
  }
}

export function parseEndpoints(file: string, text: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new EndpointsFileError(file, 'not valid JSON');
  }
  const list = (doc as { endpoints?: unknown }).endpoints;
  if (!Array.isArray(list) || !list.every((e) => typeof e === 'string' && /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d+$/.test(e))) {
    throw new EndpointsFileError(file, 'endpoints must be a list of host:port strings');
  }
  return list as string[];
}

function split(address: string): { host: string; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  return { host: m![1]!, port: Number(m![2]) };
}

export class ApiserverProxy {
  private server?: net.Server;
  private backends: Backend[] = [];
  private next = 0;
  private timers: NodeJS.Timeout[] = [];
  private lastText = '';
  readonly connections = new Set<net.Socket>();

  constructor(private readonly opts: ProxyOptions) {}

  get endpoints(): ReadonlyArray<Readonly<Backend>> {
    return this.backends;
  }

  /** Re-reads the endpoints file; keeps the current list when the file is missing or broken. */
  reload(): void {
    const file = this.opts.endpointsFile;
    if (!existsSync(file)) {
      if (!this.backends.length) this.opts.log.warn('endpoints file does not exist yet', { file });
      return;
    }
    const text = readFileSync(file, 'utf8');
    if (text === this.lastText) return;
    let list: string[];
    try {
      list = parseEndpoints(file, text);
    } catch (err) {
      this.opts.log.error('ignoring a broken endpoints file; keeping the current endpoints', { error: (err as Error).message });
      return;
    }
    this.lastText = text;
    const old = new Map(this.backends.map((b) => [b.address, b]));
    this.backends = list.map((address) => old.get(address) ?? { address, ...split(address), healthy: true, failures: 0 });
    this.opts.log.info('endpoints updated', { endpoints: list });
  }

  private probe(b: Backend): Promise<void> {
    return new Promise((resolve) => {
      const s = net.connect({ host: b.host, port: b.port });
      const done = (ok: boolean): void => {
        s.destroy();
        if (ok !== b.healthy) this.opts.log.info(ok ? 'endpoint is healthy again' : 'endpoint is unhealthy', { endpoint: b.address });
        b.healthy = ok;
        b.failures = ok ? 0 : b.failures + 1;
        resolve();
      };
      s.setTimeout(this.opts.connectTimeoutMs ?? 2000, () => done(false));
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  }

  async checkHealth(): Promise<void> {
    await Promise.all(this.backends.map((b) => this.probe(b)));
  }

  /** Healthy endpoints in round-robin order, then the unhealthy ones as a last resort. */
  private candidates(): Backend[] {
    const n = this.backends.length;
    if (!n) return [];
    const start = this.next++ % n;
    const ordered = [...this.backends.slice(start), ...this.backends.slice(0, start)];
    return [...ordered.filter((b) => b.healthy), ...ordered.filter((b) => !b.healthy)];
  }

  private handle(client: net.Socket): void {
    this.connections.add(client);
    client.once('close', () => this.connections.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const tryNext = (list: Backend[]): void => {
      const b = list.shift();
      if (!b) {
        this.opts.log.warn('no API server reachable; closing the client connection', { endpoints: this.backends.map((x) => x.address) });
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: b.host, port: b.port });
      upstream.setTimeout(this.opts.connectTimeoutMs ?? 2000);
      upstream.once('timeout', () => upstream.destroy(new Error('connect timeout')));
      upstream.once('error', () => {
        b.healthy = false;
        b.failures++;
        if (!client.destroyed) tryNext(list);
      });
      upstream.once('connect', () => {
        upstream.setTimeout(0);
        upstream.removeAllListeners('timeout');
        upstream.removeAllListeners('error');
        b.healthy = true;
        b.failures = 0;
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    tryNext(this.candidates());
  }

  async start(): Promise<void> {
    this.reload();
    await this.checkHealth();
    this.server = net.createServer((c) => this.handle(c));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen({ host: this.opts.listenHost, port: this.opts.listenPort }, () => resolve());
    });
    this.timers.push(setInterval(() => this.reload(), this.opts.refreshMs));
    this.timers.push(setInterval(() => void this.checkHealth(), this.opts.healthIntervalMs ?? 5000));
    this.opts.log.info('k8s-apiserver-proxy listening', { listen: `${this.opts.listenHost}:${this.opts.listenPort}`, endpoints: this.backends.map((b) => b.address) });
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const c of this.connections) c.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
