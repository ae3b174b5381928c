import { describe, expect, it } from 'vitest';
import { canonicalIp, ipKind, isLoopback, unmapIpv4 } from '../../src/config/net.js';
import { checkAddressClaim, checkAddressForm, checkNodeName, NodeAdmissionError, reservedNameReason } from '../../src/k8sd/membership/admission.js';

function refusal(f: () => unknown): NodeAdmissionError {
  try {
    f();
  } catch (err) {
    if (err instanceof NodeAdmissionError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('IP address canonical form and kind', () => {
  it('writes IPv6 in RFC 5952 form', () => {
    expect(canonicalIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // the first of two equal runs
    expect(canonicalIp('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1'); // the longest run
    expect(canonicalIp('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // a single zero group stays
    expect(canonicalIp('0:0:0:0:0:0:0:0')).toBe('::');
    expect(canonicalIp('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(canonicalIp('::FFFF:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(canonicalIp('10.1.2.3')).toBe('10.1.2.3');
  });

  it('is undefined for what is not an address', () => {
    for (const s of ['', 'node1', '10.1.2', '010.1.2.3', 'fe80::1%eth0', '1.2.3.4/24']) expect(canonicalIp(s), s).toBeUndefined();
  });

  it('classifies the addresses a node may not claim', () => {
    const kinds: Record<string, string> = {
      '0.0.0.0': 'unspecified',
      '0.1.2.3': 'unspecified',
      '::': 'unspecified',
      '127.0.0.1': 'loopback',
      '127.9.9.9': 'loopback',
      '::1': 'loopback',
      '::ffff:10.0.0.1': 'ipv4-mapped',
      '::ffff:127.0.0.1': 'ipv4-mapped',
      '::10.0.0.1': 'ipv4-compatible',
      '169.254.1.1': 'link-local',
      'fe80::1': 'link-local',
      '224.0.0.1': 'multicast',
      'ff02::1': 'multicast',
      '255.255.255.255': 'broadcast',
      '10.0.0.1': 'unicast',
      '2001:db8::1': 'unicast',
    };
    for (const [ip, kind] of Object.entries(kinds)) expect(ipKind(ip), ip).toBe(kind);
  });

  it('unmaps what a dual-stack socket reports, and sees loopback through the mapping', () => {
    expect(unmapIpv4('::ffff:10.0.0.7')).toBe('10.0.0.7');
    expect(unmapIpv4('2001:db8::1')).toBe('2001:db8::1');
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
  });
});

describe('node address admission', () => {
  it('accepts a canonical unicast address', () => {
    expect(checkAddressForm('10.0.0.21')).toBe('10.0.0.21');
    expect(checkAddressForm('2001:db8::21')).toBe('2001:db8::21');
  });

  it('refuses special and non-canonical addresses, naming the key and the fix', () => {
    const cases: Record<string, RegExp> = {
      '::ffff:127.0.0.1': /IPv4-mapped/,
      '::ffff:10.0.0.1': /IPv4-mapped/,
      '0.0.0.0': /unspecified/,
      '::': /unspecified/,
      '127.0.0.1': /loopback/,
      '::1': /loopback/,
      '224.0.0.1': /multicast/,
      '2001:DB8::1': /canonical form; write it as "2001:db8::1"/,
      '2001:db8:0::1': /canonical form/,
      'node1': /not an IP address/,
    };
    for (const [address, why] of Object.entries(cases)) {
      const e = refusal(() => checkAddressForm(address));
      expect(e.key, address).toBe('node.address');
      expect(e.status, address).toBe(400);
      expect(e.message, address).toMatch(why);
    }
  });

  const members = [
    { name: 'cp1', address: '10.0.0.11' },
    { name: 'w1', address: '2001:db8::21' },
  ];

  it('refuses an address another member has, in any spelling', () => {
    expect(refusal(() => checkAddressClaim({ name: 'w2', address: '10.0.0.11', source: '10.0.0.11', members })).message).toMatch(/already used by node "cp1"/);
    expect(refusal(() => checkAddressClaim({ name: 'w2', address: '2001:db8::21', source: '2001:db8::21', members })).status).toBe(409);
    // The node's own record (a resumed control-plane join) is not a clash.
    expect(() => checkAddressClaim({ name: 'cp1', address: '10.0.0.11', source: '10.0.0.11', members })).not.toThrow();
  });

  it('wants the connection source, as a dual-stack socket reports it', () => {
    expect(() => checkAddressClaim({ name: 'w2', address: '10.0.0.22', source: '::ffff:10.0.0.22', members })).not.toThrow();
    const e = refusal(() => checkAddressClaim({ name: 'w2', address: '10.0.0.22', source: '10.0.0.99', members }));
    expect(e.status).toBe(403);
    expect(e.message).toMatch(/not the source address of the join connection \(10\.0\.0\.99\).*--address 10\.0\.0\.22/);
    expect(refusal(() => checkAddressClaim({ name: 'w2', address: '10.0.0.22', source: undefined, members })).status).toBe(403);
  });

  it('accepts another address only when the operator named it on the token', () => {
    expect(() => checkAddressClaim({ name: 'w2', address: '192.0.2.22', source: '10.0.0.22', allowedAddress: '192.0.2.22', members })).not.toThrow();
    expect(refusal(() => checkAddressClaim({ name: 'w2', address: '192.0.2.23', source: '10.0.0.22', allowedAddress: '192.0.2.22', members })).status).toBe(403);
    // Never someone else's address, named or not.
    expect(refusal(() => checkAddressClaim({ name: 'w2', address: '10.0.0.11', source: '10.0.0.22', allowedAddress: '10.0.0.11', members })).status).toBe(409);
  });
});

describe('node name admission', () => {
  const ctx = { clusterDomain: 'cluster.local', extraSans: ['k8s.example.com', '192.0.2.1'] };

  it('reserves the kubernetes Service names for the cluster domain, localhost, extra SANs and addresses', () => {
    for (const n of ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster', 'kubernetes.default.svc.cluster.local', 'localhost', 'a.localhost', 'k8s.example.com', '10.0.0.1']) {
      expect(reservedNameReason(n, ctx), n).toBeDefined();
    }
    expect(reservedNameReason('kubernetes.default.svc.corp.example', { clusterDomain: 'corp.example', extraSans: [] })).toBeDefined();
    for (const n of ['worker-1', 'kubernetes-worker', 'node.kubernetes.io', 'cp1']) expect(reservedNameReason(n, ctx), n).toBeUndefined();
  });

  it('refuses reserved names and other members’ names, with the key and the fix', () => {
    const reserved = refusal(() => checkNodeName('kubernetes.default.svc', ctx));
    expect(reserved).toMatchObject({ key: 'node.name', status: 400 });
    expect(reserved.message).toMatch(/reserved.*--name/);
    const taken = refusal(() => checkNodeName('cp1', { ...ctx, members: [{ name: 'cp1', address: '10.0.0.11' }] }));
    expect(taken.status).toBe(409);
    expect(taken.message).toMatch(/remove-node cp1/);
    expect(() => checkNodeName('cp1', { ...ctx, members: [{ name: 'cp1', address: '10.0.0.11' }], self: 'cp1' })).not.toThrow();
  });
});
