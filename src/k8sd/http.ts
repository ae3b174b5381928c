// Minimal routing and the response envelope shared by k8sd's local and cluster APIs.
import { IncomingMessage, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import { RequestBodyError } from '../api/endpoint.js';

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
  /**
   * Cluster API: only a control-plane member may call it, checked before the body is read (against
   * peers.json too, so workers serve such routes). The handler may check more.
   */
  caller?: 'control-plane';
  /** Largest request body accepted; defaults to the dispatcher's limit for the route's kind. */
  maxBodyBytes?: number;
}

/** What the dispatcher lets a caller make it hold in memory or wait for. */
export interface DispatchLimits {
  /** Body limit of routes only authenticated callers reach. */
  maxBodyBytes: number;
  /** Body limit of untrusted routes (a join request is a few KiB). */
  untrustedMaxBodyBytes: number;
  /** Untrusted requests served at once; more get 429 before anything of them is read. */
  maxConcurrentUntrusted: number;
}

export const DEFAULT_DISPATCH_LIMITS: DispatchLimits = { maxBodyBytes: 4 * 1024 * 1024, untrustedMaxBodyBytes: 64 * 1024, maxConcurrentUntrusted: 32 };

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string): void {
  sendJson(res, status, { type: 'error', status: 'Failure', status_code: status, error_code: status, error: message });
}

async function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  // Refused from the header alone: nothing of an oversized body is read.
  if (declared > limit) throw new ApiError(413, `request body larger than ${limit} bytes`);
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

/**
 * A reply sent before the request body was read in full closes the connection, so that Node does
 * not read (and discard) the rest of a body nobody asked for.
 */
function closeIfUnread(rawReq: IncomingMessage, res: ServerResponse): void {
  if (rawReq.complete || res.headersSent) return;
  res.setHeader('connection', 'close');
  // Node detaches the socket from the request once the reply is written: keep it from now.
  const socket = rawReq.socket;
  res.once('finish', () => socket?.destroy());
}

/**
 * The order matters, so that a caller without credentials costs next to nothing: route lookup,
 * the cap on concurrent untrusted requests, authorization (by TLS client certificate), and only
 * then the body, within the route's limit.
 */
export function makeDispatcher(
  routes: Route[],
  authorize: (route: Route, req: Request) => Promise<void>,
  onError: (err: Error) => void,
  limits: DispatchLimits = DEFAULT_DISPATCH_LIMITS,
): (req: IncomingMessage, res: ServerResponse) => void {
  let untrustedInFlight = 0;
  return (rawReq, res) => {
    void (async () => {
      const url = new URL(rawReq.url ?? '/', 'http://k8sd');
      const route = routes.find((r) => r.method === rawReq.method && r.path === url.pathname);
      if (!route) throw new ApiError(404, `no such endpoint: ${rawReq.method} ${url.pathname}`);
      if (route.untrusted) {
        if (untrustedInFlight >= limits.maxConcurrentUntrusted) {
          res.setHeader('retry-after', '2');
          throw new ApiError(429, `too many unauthenticated requests at once (${limits.maxConcurrentUntrusted}); retry in a few seconds`);
        }
        untrustedInFlight++;
        res.once('close', () => untrustedInFlight--);
      }
      const sock = rawReq.socket as TLSSocket;
      const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
      const req: Request = {
        method: rawReq.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        body: {},
        headers: rawReq.headers,
        ...(peer && peer.fingerprint256 ? { peerFingerprint: peer.fingerprint256.replace(/:/g, '').toLowerCase() } : {}),
        raw: rawReq,
      };
      await authorize(route, req);
      if (rawReq.method !== 'GET') req.body = await readBody(rawReq, route.maxBodyBytes ?? (route.untrusted ? limits.untrustedMaxBodyBytes : limits.maxBodyBytes));
      const metadata = await route.handler(req, res);
      if (!res.headersSent) sendJson(res, 200, { type: 'sync', status: 'Success', status_code: 200, metadata: metadata ?? {} });
    })().catch((err: Error) => {
      const status = err instanceof ApiError ? err.status : err instanceof RequestBodyError ? 400 : 500;
      if (status >= 500) onError(err);
      closeIfUnread(rawReq, res);
      if (!res.headersSent) sendError(res, status, err.message);
      else res.end(JSON.stringify({ type: 'error', error: err.message }) + '\n');
    });
  };
}

/** The method and path of an endpoint of src/api/, for the route that serves it (its file of routes/): `{ ...at(local.nodeInfo), handler }`. */
export function at(endpoint: { method: Route['method']; path: string }): Pick<Route, 'method' | 'path'> {
  return { method: endpoint.method, path: endpoint.path };
}
