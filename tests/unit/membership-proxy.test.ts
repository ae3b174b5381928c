import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiserverProxy, parseEndpoints } from '../../src/apiserver-proxy/proxy.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const servers: net.Server[] = [];
const proxies: ApiserverProxy[] = [];

afterEach(async () => {
  for (const p of proxies.splice(0)) await p.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A backend that answers every connection with its name. */
async function backend(name: string): Promise<number> {
  const s = net.createServer((c) => {
    c.on('error', () => {}); // health probes hang up without reading
    c.end(name);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as net.AddressInfo).port;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('close', () => resolve(out));
    c.on('error', reject);
  });
}

async function proxyFor(endpoints: string[]): Promise<{ proxy: ApiserverProxy; port: number; file: string }> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'proxy-')), 'endpoints.json');
  writeFileSync(file, JSON.stringify({ endpoints }));
  const port = await freePort();
  const proxy = new ApiserverProxy({ listenHost: '127.0.0.1', listenPort: port, endpointsFile: file, refreshMs: 60_000, log: quiet });
  proxies.push(proxy);
  await proxy.start();
  return { proxy, port, file };
}

describe('k8s-apiserver-proxy', () => {
  it('spreads connections over the endpoints', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const { port } = await proxyFor([`127.0.0.1:${a}`, `127.0.0.1:${b}`]);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await ask(port));
    expect([...seen].sort()).toEqual(['a', 'b']);
  });

  it('skips a dead endpoint', async () => {
    const a = await backend('a');
    const dead = await freePort();
    const { port, proxy } = await proxyFor([`127.0.0.1:${dead}`, `127.0.0.1:${a}`]);
    for (let i = 0; i < 3; i++) expect(await ask(port)).toBe('a');
    expect(proxy.endpoints.find((e) => e.port === dead)?.healthy).toBe(false);
  });

  it('picks up a new endpoints file and ignores a broken one', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const { port, proxy, file } = await proxyFor([`127.0.0.1:${a}`]);
    writeFileSync(file, JSON.stringify({ endpoints: [`127.0.0.1:${b}`] }));
    proxy.reload();
    expect(await ask(port)).toBe('b');
    writeFileSync(file, '{"endpoints": "nope"}');
    proxy.reload();
    expect(await ask(port)).toBe('b');
  });

  it('validates the endpoints file', () => {
    expect(parseEndpoints('f', '{"endpoints":["10.0.0.1:6443","[fd00::1]:6443"]}')).toHaveLength(2);
    expect(() => parseEndpoints('f', 'x')).toThrow(/not valid JSON/);
    expect(() => parseEndpoints('f', '{"endpoints":["10.0.0.1"]}')).toThrow(/host:port/);
  });
});
