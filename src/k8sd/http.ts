// Minimal routing and the response envelope shared by k8sd's local and cluster APIs.
import { IncomingMessage, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface Request {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: IncomingMessage['headers'];
  /** Peer certificate DER fingerprint (cluster API only). */
  peerFingerprint?: string;
  raw: IncomingMessage;
}

/** A handler returns metadata for a sync reply, or streams through `res` itself and returns undefined. */
export type Handler = (req: Request, res: ServerResponse) => Promise<unknown>;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  handler: Handler;
  /** Cluster API: allowed without a member certificate (token-authenticated routes). */
  untrusted?: boolean;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { type: 'error', status: 'Failure', status_code: status, error_code: status, error: message });
}

async function readBody(req: IncomingMessage, limit = 4 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new ApiError(413, `request body larger than ${limit} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'request body is not valid JSON');
  }
}

export function makeDispatcher(
  routes: Route[],
  authorize: (route: Route, req: Request) => Promise<void>,
  onError: (err: Error) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (rawReq, res) => {
    void (async () => {
      const url = new URL(rawReq.url ?? '/', 'http://k8sd');
      const route = routes.find((r) => r.method === rawReq.method && r.path === url.pathname);
      if (!route) return sendError(res, 404, `no such endpoint: ${rawReq.method} ${url.pathname}`);
      const sock = rawReq.socket as TLSSocket;
      const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
      const req: Request = {
        method: rawReq.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        body: rawReq.method === 'GET' ? {} : await readBody(rawReq),
        headers: rawReq.headers,
        ...(peer && peer.fingerprint256 ? { peerFingerprint: peer.fingerprint256.replace(/:/g, '').toLowerCase() } : {}),
        raw: rawReq,
      };
      await authorize(route, req);
      const metadata = await route.handler(req, res);
      if (!res.headersSent) sendJson(res, 200, { type: 'sync', status: 'Success', status_code: 200, metadata: metadata ?? {} });
    })().catch((err: Error) => {
      const status = err instanceof ApiError ? err.status : 500;
      if (status >= 500) onError(err);
      if (!res.headersSent) sendError(res, status, err.message);
      else res.end(JSON.stringify({ type: 'error', error: err.message }) + '\n');
    });
  };
}
