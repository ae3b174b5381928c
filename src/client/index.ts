// Typed client for k8sd's local API (unix socket): every call names an endpoint of src/api/,
// which gives it the path, the request type and the reply type.
import { existsSync } from 'node:fs';
import { Layout } from '../layout.js';
import { installAdvice } from '../install.js';
import type { z } from 'zod';
import { local, type ClusterStatus, type Endpoint, type NodeInfo, type ProgressEvent, type RequestOf, type ResponseOf } from '../api/index.js';

export type { NodeInfo, ProgressEvent };
type AnyEndpoint = Endpoint<z.ZodType, unknown>;

// Not `import http from 'node:http'`: an ES import of node:http reads every export, and its lazy
// WebSocket/EventSource getters load Node's bundled undici, ~40 ms of CPU at every `k8s` start (issue 17).
const http = process.getBuiltinModule('node:http');

export class K8sdError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'K8sdError';
  }
}

export class K8sdClient {
  constructor(readonly layout: Layout = new Layout(), private readonly timeoutMs = 90_000) {}

  private notRunning(): K8sdError {
    return new K8sdError(
      `k8sd is not running (no socket at ${this.layout.controlSocket}); start it with "${installAdvice(this.layout).startK8sd}"`,
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
        else if (err.code === 'EACCES') reject(new K8sdError(`permission denied on ${this.layout.controlSocket}; run it as root, e.g. "${installAdvice(this.layout).k8s('status')}"`));
        else reject(err instanceof K8sdError ? err : new K8sdError(err.message));
      });
      req.end(payload);
    });
  }

  node(): Promise<NodeInfo> {
    return this.call(local.nodeInfo);
  }

  status(): Promise<ClusterStatus> {
    return this.call(local.clusterStatus);
  }

  kubeconfig(server?: string): Promise<{ kubeconfig: string }> {
    return this.call(local.kubeconfig, undefined, server ? { server } : undefined);
  }

  /** Feature settings under Canonical Kubernetes' keys (all, one feature's, or one value). */
  getClusterConfig(key?: string): Promise<{ settings: unknown }> {
    return this.call(local.getClusterConfig, undefined, key ? { key } : undefined);
  }

  /** Applies key=value changes (validated as a whole; nothing changes on error). */
  setClusterConfig(changes: Record<string, string | boolean>): Promise<{ settings: Record<string, unknown> }> {
    return this.call(local.setClusterConfig, { changes });
  }

  /** Streams progress; resolves with the final metadata or rejects with the flow's error. */
  bootstrap(params: RequestOf<typeof local.bootstrap>, onEvent: (e: ProgressEvent) => void): Promise<ResponseOf<typeof local.bootstrap>> {
    return this.stream(local.bootstrap, params, onEvent);
  }

  /** Calls a streaming endpoint: `onEvent` sees each progress event; resolves with what `done` carries. */
  async stream<E extends AnyEndpoint>(endpoint: E, body: RequestOf<E>, onEvent: (e: ProgressEvent) => void): Promise<ResponseOf<E>> {
    let result: Record<string, unknown> | undefined;
    let failure: string | undefined;
    await this.request(endpoint.method, endpoint.path, body, (line) => {
      const e = JSON.parse(line) as ProgressEvent;
      if (e.type === 'done') result = e.metadata;
      else if (e.type === 'error') failure = e.error;
      onEvent(e);
    });
    if (failure) throw new K8sdError(failure);
    if (!result) throw new K8sdError('k8sd closed the connection before finishing; see its log');
    return result as ResponseOf<E>;
  }

  /** Calls an endpoint with a plain reply; `query` adds URL parameters. */
  async call<E extends AnyEndpoint>(endpoint: E, body?: RequestOf<E>, query?: Record<string, string>): Promise<ResponseOf<E>> {
    const q = query && Object.keys(query).length ? `?${new URLSearchParams(query).toString()}` : '';
    return (await this.request(endpoint.method, `${endpoint.path}${q}`, body)) as ResponseOf<E>;
  }
}
