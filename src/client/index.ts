// Typed client for k8sd's local API (unix socket).
import { existsSync } from 'node:fs';
import { Layout } from '../layout.js';
import type { ClusterStatus } from '../k8sd/status.js';

// Not `import http from 'node:http'`: an ES import of node:http reads every export, and its lazy
// WebSocket/EventSource getters load Node's bundled undici, ~40 ms of CPU at every `k8s` start (issue 17).
const http = process.getBuiltinModule('node:http');

export class K8sdError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'K8sdError';
  }
}

export interface NodeInfo {
  clustered: boolean;
  name: string;
  address: string;
  role?: 'control-plane' | 'worker';
}

export type ProgressEvent =
  | { type: 'step'; step: string; title: string }
  | { type: 'rollback'; step: string; error?: string }
  /** A step finished on one node of the cluster (CA rotation). */
  | { type: 'node'; step: string; node: string; role: string; detail: string }
  | { type: 'info'; message: string }
  | { type: 'done'; metadata: Record<string, unknown> }
  | { type: 'error'; error: string };

export class K8sdClient {
  constructor(readonly layout: Layout = new Layout(), private readonly timeoutMs = 90_000) {}

  private notRunning(): K8sdError {
    return new K8sdError(
      `k8sd is not running (no socket at ${this.layout.controlSocket}); start it with "npm start" in a dev install or "sudo snap start k8s.k8sd"`,
    );
  }

  private request(method: string, path: string, body?: unknown, onLine?: (line: string) => void): Promise<unknown> {
    if (!existsSync(this.layout.controlSocket)) return Promise.reject(this.notRunning());
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.layout.controlSocket,
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          let buf = '';
          const streaming = (res.headers['content-type'] ?? '').includes('ndjson');
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            if (streaming && onLine) {
              let i;
              while ((i = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, i);
                buf = buf.slice(i + 1);
                if (line.trim()) onLine(line);
              }
            }
          });
          res.on('end', () => {
            if (streaming) return resolve(undefined);
            let parsed: { type?: string; error?: string; metadata?: unknown };
            try {
              parsed = JSON.parse(buf);
            } catch {
              return reject(new K8sdError(`k8sd sent an unreadable reply (${res.statusCode})`, res.statusCode));
            }
            if (parsed.type === 'error') return reject(new K8sdError(parsed.error ?? 'unknown error', res.statusCode));
            resolve(parsed.metadata);
          });
        },
      );
      req.on('timeout', () => req.destroy(new K8sdError(`k8sd did not answer within ${Math.round(this.timeoutMs / 1000)} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') reject(this.notRunning());
        else if (err.code === 'EACCES') reject(new K8sdError(`permission denied on ${this.layout.controlSocket}; run as root (sudo)`));
        else reject(err instanceof K8sdError ? err : new K8sdError(err.message));
      });
      req.end(payload);
    });
  }

  node(): Promise<NodeInfo> {
    return this.request('GET', '/1.0/k8sd/node') as Promise<NodeInfo>;
  }

  status(): Promise<ClusterStatus> {
    return this.request('GET', '/1.0/k8sd/cluster') as Promise<ClusterStatus>;
  }

  kubeconfig(server?: string): Promise<{ kubeconfig: string }> {
    const q = server ? `?server=${encodeURIComponent(server)}` : '';
    return this.request('GET', `/1.0/k8sd/kubeconfig${q}`) as Promise<{ kubeconfig: string }>;
  }

  /** Feature settings under Canonical Kubernetes' keys (all, one feature's, or one value). */
  getClusterConfig(key?: string): Promise<{ settings: unknown }> {
    return this.request('GET', `/1.0/k8sd/cluster/config${key ? `?key=${encodeURIComponent(key)}` : ''}`) as Promise<{ settings: unknown }>;
  }

  /** Applies key=value changes (validated as a whole; nothing changes on error). */
  setClusterConfig(changes: Record<string, string | boolean>): Promise<{ settings: Record<string, unknown> }> {
    return this.request('PUT', '/1.0/k8sd/cluster/config', { changes }) as Promise<{ settings: Record<string, unknown> }>;
  }

  /** Streams progress; resolves with the final metadata or rejects with the flow's error. */
  async bootstrap(params: { config: string; name?: string; address?: string; timeoutSeconds?: number }, onEvent: (e: ProgressEvent) => void): Promise<Record<string, unknown>> {
    return this.stream('POST', '/1.0/k8sd/cluster', params, onEvent);
  }

  async stream(method: string, path: string, body: unknown, onEvent: (e: ProgressEvent) => void): Promise<Record<string, unknown>> {
    let result: Record<string, unknown> | undefined;
    let failure: string | undefined;
    await this.request(method, path, body, (line) => {
      const e = JSON.parse(line) as ProgressEvent;
      if (e.type === 'done') result = e.metadata;
      else if (e.type === 'error') failure = e.error;
      onEvent(e);
    });
    if (failure) throw new K8sdError(failure);
    if (!result) throw new K8sdError('k8sd closed the connection before finishing; see its log');
    return result;
  }

  call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
    return this.request(method, path, body) as Promise<T>;
  }
}
