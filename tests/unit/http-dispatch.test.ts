import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiError, makeDispatcher, Route } from '../../src/k8sd/http.js';
import { TrustedPeers } from '../../src/k8sd/trusted-peers.js';

let server: http.Server | undefined;
afterEach(() => server?.close());

async function serve(routes: Route[], authorize: (r: Route) => Promise<void>): Promise<number> {
  server = http.createServer(makeDispatcher(routes, (r) => authorize(r), () => undefined, { maxBodyBytes: 4 << 20, untrustedMaxBodyBytes: 1024, maxConcurrentUntrusted: 2 }));
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Sends only the request head (announcing a body) and returns the first reply line. */
function headOnly(port: number, path: string, contentLength: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: ${contentLength}\r\n\r\n`));
    let text = '';
    s.on('data', (c) => {
      text += c.toString();
      if (text.includes('\r\n')) {
        resolve(text.split('\r\n')[0]!);
        s.destroy();
      }
    });
    s.on('error', reject);
  });
}

describe('cluster API dispatcher', () => {
  it('refuses an unauthorized caller before reading its body', async () => {
    let handled = false;
    const port = await serve([{ method: 'POST', path: '/member', handler: async () => (handled = true) }], async () => {
      throw new ApiError(403, 'no');
    });
    expect(await headOnly(port, '/member', 4 << 20)).toBe('HTTP/1.1 403 Forbidden');
    expect(handled).toBe(false);
  });

  it('refuses an oversized body on an untrusted route from its content-length alone', async () => {
    const port = await serve([{ method: 'POST', path: '/join', untrusted: true, handler: async () => ({}) }], async () => undefined);
    expect(await headOnly(port, '/join', 4096)).toBe('HTTP/1.1 413 Payload Too Large');
  });

  it('cuts off a chunked body at the limit, closes the connection and keeps serving', async () => {
    const port = await serve([{ method: 'POST', path: '/join', untrusted: true, handler: async () => ({}) }], async () => undefined);
    for (let i = 0; i < 20; i++) {
      const line = await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.write('POST /join HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n');
          for (let c = 0; c < 8; c++) s.write(`400\r\n${'x'.repeat(1024)}\r\n`);
        });
        let text = '';
        s.on('data', (c) => (text += c.toString()));
        s.on('error', () => resolve(text.split('\r\n')[0]!));
        s.on('close', () => resolve(text.split('\r\n')[0]!));
      });
      expect(line).toBe('HTTP/1.1 413 Payload Too Large');
    }
    const status = await new Promise<number>((resolve) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/join', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.end('{}');
    });
    expect(status).toBe(200);
  });

  it('answers 429 beyond the cap on concurrent untrusted requests, and serves again after', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const port = await serve([{ method: 'POST', path: '/join', untrusted: true, handler: async () => gate }], async () => undefined);
    const held = [0, 1].map(
      () =>
        new Promise<number>((resolve) => {
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/join', agent: false }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          });
          req.end('{}');
        }),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(await headOnly(port, '/join', 2)).toBe('HTTP/1.1 429 Too Many Requests');
    release();
    expect(await Promise.all(held)).toEqual([200, 200]);
  });
});

describe('trusted peer fingerprints', () => {
  it('reads the members once, reloads for an unknown caller at most once per interval, and after a local change', async () => {
    let loads = 0;
    let generation = 0;
    let now = 0;
    const members = new Map<string, 'control-plane' | 'worker'>([['aa', 'control-plane']]);
    const t = new TrustedPeers(
      { members: async () => (loads++, new Map(members)), peers: () => new Map(), peersFile: '/nonexistent', generation: () => generation },
      { ttlMs: 10_000, missReloadMs: 1_000 },
      () => now,
    );
    expect(await t.isControlPlane('aa')).toBe(true);
    for (let i = 0; i < 100; i++) expect(await t.memberRole('zz')).toBeUndefined();
    expect(loads).toBe(2);
    members.set('bb', 'worker');
    now += 1_500;
    expect(await t.memberRole('bb')).toBe('worker');
    members.delete('bb');
    generation++;
    expect(await t.memberRole('bb')).toBeUndefined();
  });
});
