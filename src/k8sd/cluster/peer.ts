// Calls to another node's cluster API (port 6400). Every call presents this node's cluster
// certificate (mutual TLS) and pins the server: the TLS handshake must finish with a
// certificate whose SHA-256 fingerprint is one we expect, before a single byte of the
// request (which may carry a join secret) is written.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import tls from 'node:tls';
import { writeFileAtomic } from '../../host/files.js';
import { Layout } from '../../layout.js';
import { serverTlsOptions } from '../tls.js';

export interface PeerIdentity {
  cert: string;
  key: string;
}

/** Where to call, and which certificate fingerprints the server may present. */
export interface PeerTarget {
  /** host:port, IPv6 hosts in brackets. */
  address: string;
  fingerprints: string[];
}

/** The server is not who the token or the membership records say: nothing was sent. */
export class PeerIdentityError extends Error {
  constructor(readonly address: string, readonly presented: string) {
    super(
      `the k8sd at ${address} presented a certificate (SHA-256 ${presented.slice(0, 16)}…) that does not match the expected fingerprint; ` +
        'the token belongs to another cluster, or something intercepts the connection. Nothing was sent',
    );
    this.name = 'PeerIdentityError';
  }
}

/** The peer could not be reached at all (refused, unreachable, timed out). */
export class PeerUnreachableError extends Error {
  constructor(readonly address: string, reason: string) {
    super(`cannot reach k8sd at ${address}: ${reason}`);
    this.name = 'PeerUnreachableError';
  }
}

/** The peer answered with an error. */
export class PeerApiError extends Error {
  constructor(readonly address: string, readonly status: number, message: string) {
    super(message);
    this.name = 'PeerApiError';
  }
}

export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`"${address}" is not host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toLowerCase();
}

function connectPinned(identity: PeerIdentity, target: PeerTarget, timeoutMs: number): Promise<tls.TLSSocket> {
  const { host, port } = splitHostPort(target.address);
  const expected = new Set(target.fingerprints.map(normalizeFingerprint));
  const { honorCipherOrder: _ignored, ...clientTls } = serverTlsOptions();
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      ...clientTls,
      host,
      port,
      cert: identity.cert,
      key: identity.key,
      // The server certificate is self-signed: it is checked by fingerprint below, not by a CA.
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('timeout', () => fail(new PeerUnreachableError(target.address, `no TLS handshake within ${Math.round(timeoutMs / 1000)} s`)));
    socket.once('error', (err: NodeJS.ErrnoException) => fail(new PeerUnreachableError(target.address, err.code ?? err.message)));
    socket.once('secureConnect', () => {
      const presented = normalizeFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
      if (!expected.has(presented)) return fail(new PeerIdentityError(target.address, presented));
      socket.setTimeout(0);
      socket.removeAllListeners('timeout');
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** One request over a pinned, mutually authenticated connection. Resolves with the reply's metadata. */
export async function peerRequest<T>(
  identity: PeerIdentity,
  target: PeerTarget,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<T> {
  const socket = await connectPinned(identity, target, Math.min(timeoutMs, 10_000));
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = http.request(
      {
        createConnection: () => socket,
        method,
        path,
        headers: { host: target.address, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          socket.destroy();
          let parsed: { type?: string; error?: string; metadata?: unknown };
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch {
            return reject(new PeerApiError(target.address, res.statusCode ?? 500, `k8sd at ${target.address} sent an unreadable reply (HTTP ${res.statusCode})`));
          }
          if (parsed.type === 'error' || (res.statusCode ?? 500) >= 400) {
            return reject(new PeerApiError(target.address, res.statusCode ?? 500, parsed.error ?? `HTTP ${res.statusCode}`));
          }
          resolve(parsed.metadata as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new PeerUnreachableError(target.address, `no answer within ${Math.round(timeoutMs / 1000)} s`)));
    req.on('error', (err) => {
      socket.destroy();
      reject(err instanceof PeerUnreachableError || err instanceof PeerApiError ? err : new PeerUnreachableError(target.address, err.message));
    });
    req.end(payload);
  });
}

/** A cluster member as this node knows it; cached in peers.json for when the datastore is out of reach. */
export interface PeerRecord {
  name: string;
  address: string;
  role: 'control-plane' | 'worker';
  /** Fingerprint of the member's k8sd cluster certificate. */
  fingerprint: string;
  clusterPort: number;
}

export function readPeers(layout: Layout): PeerRecord[] {
  if (!existsSync(layout.peersFile)) return [];
  try {
    return JSON.parse(readFileSync(layout.peersFile, 'utf8')) as PeerRecord[];
  } catch {
    return [];
  }
}

export function writePeers(layout: Layout, peers: PeerRecord[]): boolean {
  const text = JSON.stringify([...peers].sort((a, b) => a.name.localeCompare(b.name)), null, 2) + '\n';
  if (existsSync(layout.peersFile) && readFileSync(layout.peersFile, 'utf8') === text) return false;
  writeFileAtomic(layout.peersFile, text, 0o600);
  return true;
}

export function peerTarget(p: PeerRecord): PeerTarget {
  return { address: joinHostPort(p.address, p.clusterPort), fingerprints: [p.fingerprint] };
}
