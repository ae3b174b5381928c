import { describe, expect, it } from 'vitest';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { issueServingPair, servingPairProblem } from '../../src/k8sd/features/metrics-server-tls.js';

const DAY = 86_400_000;
const crypto = new NodeCryptoBackend();
const policy = { keyType: 'ecdsa-p256' as const, clusterDomain: 'cluster.local', certificates: { lifetimeMs: 365 * DAY, renewFraction: 1 / 3, renewBeforeMs: 30 * DAY, checkIntervalMs: 3_600_000 } };

describe('metrics-server serving certificate', () => {
  it('is issued for the Service names by a one-certificate CA that is kept while valid', async () => {
    const pair = await issueServingPair(crypto, policy);
    const info = crypto.parseCertificate(pair.cert);
    expect(info.dnsNames).toEqual(['metrics-server.kube-system.svc', 'metrics-server.kube-system.svc.cluster.local', 'metrics-server.kube-system', 'metrics-server']);
    expect(info.isCA).toBe(false);
    expect(crypto.parseCertificate(pair.ca).isCA).toBe(true);
    expect(await crypto.verifyIssuedBy(pair.cert, pair.ca)).toBe(true);
    expect(await servingPairProblem(crypto, pair, policy)).toBeUndefined();
  });

  it('is replaced when renewal is due, for another domain, a foreign CA or a wrong key', async () => {
    const pair = await issueServingPair(crypto, policy);
    const other = await issueServingPair(crypto, policy);
    expect(await servingPairProblem(crypto, pair, policy, Date.now() + 340 * DAY)).toBe('renewal is due');
    expect(await servingPairProblem(crypto, pair, { ...policy, clusterDomain: 'k8s.example' })).toMatch(/lacks a name/);
    expect(await servingPairProblem(crypto, { ...pair, ca: other.ca }, policy)).toMatch(/CA did not sign/);
    expect(await servingPairProblem(crypto, { ...pair, key: other.key }, policy)).toMatch(/key does not match/);
    expect(await servingPairProblem(crypto, { ...pair, cert: 'garbage' }, policy)).toMatch(/does not parse/);
  });
});
