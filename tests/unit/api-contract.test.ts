import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { local, peer, RequestBodyError, type Endpoint } from '../../src/api/index.js';
import { parseRequest } from '../../src/api/parse.js';
import { at, makeDispatcher } from '../../src/k8sd/http.js';
import type { z } from 'zod';

const endpoints = (group: Record<string, unknown>): Array<Endpoint<z.ZodType, unknown>> =>
  Object.values(group).filter((v): v is Endpoint<z.ZodType, unknown> => typeof v === 'object' && v !== null && 'path' in v && 'request' in v);

describe('the API contract (src/api)', () => {
  it('names each method and path once, local and cluster API alike', () => {
    const keys = [...endpoints(local), ...endpoints(peer)].map((e) => `${e.method} ${e.path}`);
    expect(keys.length).toBeGreaterThan(35);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('parses a valid body, with the schema’s types', () => {
    expect(parseRequest(local.removeNode, { name: 'n1', force: true })).toEqual({ name: 'n1', force: true });
    expect(parseRequest(local.nodeInfo, {})).toEqual({});
  });

  it('names the offending field, nested ones by their path', () => {
    expect(() => parseRequest(local.removeNode, { name: 7 })).toThrow(/field "name"/);
    expect(() => parseRequest(peer.memberJoin, { token: { name: 't', secret: 1 }, role: 'worker', node: { name: 'w', address: '10.0.0.2', clusterCert: 'x' } })).toThrow(
      /POST \/1\.0\/k8sd\/members\/join: field "token\.secret"/,
    );
    expect(() => parseRequest(peer.caRotationApply, { id: 'r1', phase: 'later' })).toThrow(/field "phase"/);
    expect(() => parseRequest(local.refreshCerts, { certificates: 'apiserver' })).toThrow(RequestBodyError);
  });

  it('checks encryption keys only for their provider (the security manager validates the rest)', () => {
    expect(parseRequest(peer.encryptionKeysStage, { keyId: 'k2', keys: { provider: 'aesgcm', keys: [] } }).keys.provider).toBe('aesgcm');
    expect(() => parseRequest(peer.encryptionKeysStage, { keyId: 'k2', keys: { provider: 'rot13' } })).toThrow(/field "keys\.provider"/);
  });
});

describe('a route that parses with its endpoint', () => {
  let server: http.Server | undefined;
  afterEach(() => server?.close());

  it('answers 400 naming the field', async () => {
    let handled = false;
    server = http.createServer(
      makeDispatcher(
        [{ ...at(local.revokeToken), handler: async (req) => ((handled = true), parseRequest(local.revokeToken, req.body)) }],
        async () => undefined,
        () => undefined,
      ),
    );
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const reply = await new Promise<{ status: number; body: { error?: string } }>((resolve, reject) => {
      const payload = JSON.stringify({ name: ['a'] });
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: local.revokeToken.path, headers: { 'content-length': Buffer.byteLength(payload) } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error?: string } }));
      });
      req.on('error', reject);
      req.end(payload);
    });
    expect(handled).toBe(true);
    expect(reply.status).toBe(400);
    expect(reply.body.error).toMatch(/field "name"/);
  });
});

