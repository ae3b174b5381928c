import https from 'node:https';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { fingerprintOf } from '../../src/k8sd/identity.js';
import { PeerApiError, PeerIdentityError, peerRequest } from '../../src/k8sd/cluster/peer.js';

const crypto = new NodeCryptoBackend();

async function selfSigned(cn: string): Promise<{ cert: string; key: string }> {
  const kp = await crypto.generateKeyPair('ecdsa-p256');
  const now = Date.now();
  const cert = await crypto.createCertificate(
    { subject: { commonName: cn }, ipAddresses: ['127.0.0.1'], isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['serverAuth', 'clientAuth'], notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) },
    kp,
  );
  return { cert, key: kp.privateKeyPem };
}

let server: https.Server;
let port = 0;
let requests = 0;
let serverId: { cert: string; key: string };
let clientId: { cert: string; key: string };
let clientFingerprintSeen = '';

beforeAll(async () => {
  serverId = await selfSigned('k8sd@server');
  clientId = await selfSigned('k8sd@client');
  server = https.createServer({ cert: serverId.cert, key: serverId.key, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    requests++;
    clientFingerprintSeen = (req.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
    if (req.url === '/fail') {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: 'token rejected' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ type: 'sync', metadata: { ok: true } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('pinned peer requests', () => {
  it('talks to a server whose certificate has the pinned fingerprint, presenting our certificate', async () => {
    const reply = await peerRequest<{ ok: boolean }>(clientId, { address: `127.0.0.1:${port}`, fingerprints: [fingerprintOf(crypto, serverId.cert)] }, 'POST', '/x', { a: 1 });
    expect(reply.ok).toBe(true);
    expect(clientFingerprintSeen).toBe(fingerprintOf(crypto, clientId.cert));
  });

  it('sends nothing to a server with another fingerprint (another cluster)', async () => {
    const before = requests;
    const other = await selfSigned('k8sd@other');
    await expect(peerRequest(clientId, { address: `127.0.0.1:${port}`, fingerprints: [fingerprintOf(crypto, other.cert)] }, 'POST', '/x', { secret: 's' })).rejects.toBeInstanceOf(PeerIdentityError);
    expect(requests).toBe(before);
  });

  it('surfaces the server’s error message', async () => {
    await expect(peerRequest(clientId, { address: `127.0.0.1:${port}`, fingerprints: [fingerprintOf(crypto, serverId.cert)] }, 'POST', '/fail', {})).rejects.toThrow(PeerApiError);
  });
});
