import type { V1Node, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';
import { applyFeatureChanges, defaultFeatureSettings, FeatureConfigError, selectFeatureSettings } from '../../src/config/features.js';
import { addressRanges, electAnnouncer, gobgpdConfig, nextFreeAddress, parseAddressRange } from '../../src/config/load-balancer.js';
import { eligibleNodes, guardRules, LB_INPUT_CHAIN, planAllocations } from '../../src/k8sd/features/load-balancer.js';
import { featureObjects, FEATURE_KINDS, FEATURE_LABEL, ManifestContext } from '../../src/k8sd/features/manifests.js';

const facts = { serviceCidr: '10.152.183.0/24' };
const base = defaultFeatureSettings(facts.serviceCidr, true);
const withPool = applyFeatureChanges(base, { 'load-balancer.cidrs': '192.0.2.0/29' }, facts);

function refusal(changes: Record<string, unknown>, from = base): FeatureConfigError {
  try {
    applyFeatureChanges(from, changes, facts);
  } catch (e) {
    expect(e).toBeInstanceOf(FeatureConfigError);
    return e as FeatureConfigError;
  }
  throw new Error(`expected ${JSON.stringify(changes)} to be refused`);
}

describe('load-balancer keys (k8s set / get, bootstrap file)', () => {
  it('defaults as Canonical Kubernetes: off, L2 mode, BGP off, peer port 179', () => {
    expect(selectFeatureSettings(base, 'load-balancer')).toEqual({
      enabled: false, cidrs: [], 'l2-mode': true, 'l2-interfaces': [], 'bgp-mode': false, 'bgp-local-asn': 0, 'bgp-peer-address': '', 'bgp-peer-asn': 0, 'bgp-peer-port': 179,
    });
  });

  it('takes CIDRs and ranges, interfaces, and BGP settings in one set', () => {
    const s = applyFeatureChanges(base, {
      'load-balancer.enabled': 'true',
      'load-balancer.cidrs': '192.0.2.0/28, 198.51.100.10-198.51.100.20',
      'load-balancer.l2-interfaces': 'eth0,bond0.100',
      'load-balancer.bgp-mode': 'true',
      'load-balancer.bgp-local-asn': '64512',
      'load-balancer.bgp-peer-address': '192.0.2.254',
      'load-balancer.bgp-peer-asn': 4200000000,
      'load-balancer.bgp-peer-port': '1179',
    }, facts);
    expect(s['load-balancer']).toEqual({
      enabled: true, cidrs: ['192.0.2.0/28', '198.51.100.10-198.51.100.20'], 'l2-mode': true, 'l2-interfaces': ['eth0', 'bond0.100'],
      'bgp-mode': true, 'bgp-local-asn': 64512, 'bgp-peer-address': '192.0.2.254', 'bgp-peer-asn': 4200000000, 'bgp-peer-port': 1179,
    });
    expect(base['load-balancer'].enabled).toBe(false);
  });

  it('refuses bad values naming the key and the value, and changes nothing', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ 'load-balancer.cidrs': '10.0.0.0/33' }, 'load-balancer.cidrs', /10\.0\.0\.0\/33.*maximum for IPv4/],
      [{ 'load-balancer.cidrs': '10.0.0.1/24' }, 'load-balancer.cidrs', /host bits set/],
      [{ 'load-balancer.cidrs': 'banana' }, 'load-balancer.cidrs', /"banana"/],
      [{ 'load-balancer.cidrs': '10.0.0.20-10.0.0.10' }, 'load-balancer.cidrs', /starts after it ends/],
      [{ 'load-balancer.cidrs': '10.0.0.1-2001:db8::1' }, 'load-balancer.cidrs', /mixes/],
      [{ 'load-balancer.cidrs': '10.0.0.0/28,10.0.0.8-10.0.0.30' }, 'load-balancer.cidrs', /overlap/],
      [{ 'load-balancer.cidrs': '10.0.0.0/28,2001:db8::/120' }, 'load-balancer.cidrs', /"2001:db8::\/120" is an IPv6 pool.*IPv4/],
      [{ 'load-balancer.bgp-local-asn': '0' }, 'load-balancer.bgp-local-asn', /"0" is not an AS number.*1 to 4294967295/],
      [{ 'load-balancer.bgp-peer-asn': '4294967296' }, 'load-balancer.bgp-peer-asn', /"4294967296" is not an AS number/],
      [{ 'load-balancer.bgp-peer-asn': '-5' }, 'load-balancer.bgp-peer-asn', /not an AS number/],
      [{ 'load-balancer.bgp-peer-port': '70000' }, 'load-balancer.bgp-peer-port', /"70000" is not a TCP port/],
      [{ 'load-balancer.bgp-peer-port': '0' }, 'load-balancer.bgp-peer-port', /not a TCP port/],
      [{ 'load-balancer.bgp-peer-address': 'router.example' }, 'load-balancer.bgp-peer-address', /not an IP address/],
      [{ 'load-balancer.l2-interfaces': 'eth0;reboot' }, 'load-balancer.l2-interfaces', /not a network interface name/],
      [{ 'load-balancer.l2-mode': 'yes' }, 'load-balancer.l2-mode', /not a boolean/],
      [{ 'load-balancer.cidr': '10.0.0.0/24' }, 'load-balancer.cidr', /unknown key.*load-balancer.cidrs/],
    ];
    for (const [changes, key, reason] of cases) {
      const err = refusal(changes);
      expect(err.key, JSON.stringify(changes)).toBe(key);
      expect(err.reason, JSON.stringify(changes)).toMatch(reason);
    }
  });

  it('enabling needs a pool, a mode, and in BGP mode the ASNs and the peer', () => {
    expect(refusal({ 'load-balancer.enabled': true }).key).toBe('load-balancer.cidrs');
    expect(refusal({ 'load-balancer.enabled': true, 'load-balancer.l2-mode': false }, withPool).key).toBe('load-balancer.l2-mode');
    const bgp = { 'load-balancer.enabled': true, 'load-balancer.bgp-mode': true };
    expect(refusal(bgp, withPool).key).toBe('load-balancer.bgp-local-asn');
    expect(refusal({ ...bgp, 'load-balancer.bgp-local-asn': 64512, 'load-balancer.bgp-peer-asn': 64513 }, withPool).key).toBe('load-balancer.bgp-peer-address');
    expect(applyFeatureChanges(withPool, { 'load-balancer.enabled': true }, facts)['load-balancer'].enabled).toBe(true);
  });

  it('bootstrap file: keys honoured, a bad one refused under cluster-config', () => {
    const c = parseBootstrapYaml('cluster-config: {load-balancer: {enabled: true, cidrs: [10.0.0.0/28], bgp-peer-port: 1179}}');
    expect(c.features['load-balancer']).toMatchObject({ enabled: true, cidrs: ['10.0.0.0/28'], 'bgp-peer-port': 1179 });
    let err: unknown;
    try {
      parseBootstrapYaml('cluster-config: {load-balancer: {enabled: true, cidrs: [10.0.0.0/28], bgp-mode: true, bgp-local-asn: 99999999999, bgp-peer-asn: 1, bgp-peer-address: 10.0.0.1}}');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('cluster-config.load-balancer.bgp-local-asn');
  });
});

describe('address pools and allocation', () => {
  it('parses ranges and CIDRs and skips a subnet\'s network and broadcast addresses', () => {
    expect(parseAddressRange('10.0.0.10-10.0.0.12')).toMatchObject({ family: 4, first: 167772170n, last: 167772172n });
    const r = addressRanges({ cidrs: ['10.0.0.0/30', '10.0.0.10-10.0.0.11'] });
    expect(nextFreeAddress(r, new Set())).toBe('10.0.0.1');
    expect(nextFreeAddress(r, new Set(['10.0.0.1', '10.0.0.2']))).toBe('10.0.0.10');
    expect(nextFreeAddress(r, new Set(['10.0.0.1', '10.0.0.2', '10.0.0.10', '10.0.0.11']))).toBeUndefined();
    expect(nextFreeAddress(addressRanges({ cidrs: ['10.0.0.7/32'] }), new Set())).toBe('10.0.0.7');
  });

  const svc = (name: string, created: string, extra: { ip?: string; want?: string; cls?: string; type?: string } = {}): V1Service => ({
    metadata: { name, namespace: 'default', uid: name, creationTimestamp: new Date(created) },
    spec: { type: extra.type ?? 'LoadBalancer', ...(extra.want ? { loadBalancerIP: extra.want } : {}), ...(extra.cls ? { loadBalancerClass: extra.cls } : {}) },
    status: extra.ip ? { loadBalancer: { ingress: [{ ip: extra.ip }] } } : {},
  });

  it('keeps addresses already held, serves the oldest first, honours a requested address, leaves others alone', () => {
    const ranges = addressRanges({ cidrs: ['10.0.0.10-10.0.0.12'] });
    const plan = planAllocations(
      [
        svc('newest', '2026-01-03'),
        svc('held', '2026-01-02', { ip: '10.0.0.10' }),
        svc('old', '2026-01-01'),
        svc('asks', '2026-01-04', { want: '10.0.0.12' }),
        svc('asks-outside', '2026-01-05', { want: '10.9.9.9' }),
        svc('other-class', '2026-01-01', { cls: 'example.com/lb' }),
        svc('cluster-ip', '2026-01-01', { type: 'ClusterIP' }),
      ],
      ranges,
    );
    expect(plan.assign).toEqual([
      { namespace: 'default', name: 'old', ip: '10.0.0.11' },
      { namespace: 'default', name: 'newest', ip: '10.0.0.12' },
    ]);
    expect(plan.pending).toEqual(['default/asks', 'default/asks-outside']);
  });

  it('elects one announcer per address among the Ready control-plane nodes, the same on every node', () => {
    const node = (name: string, ready: boolean, cp = true): V1Node => ({
      metadata: { name, labels: cp ? { 'node-role.kubernetes.io/control-plane': '' } : {} },
      status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    const electorate = eligibleNodes([node('c', true), node('a', true), node('b', false), node('w', true, false)]);
    expect(electorate).toEqual(['a', 'c']);
    const winners = new Set(Array.from({ length: 40 }, (_, i) => electAnnouncer(`10.0.0.${i}`, electorate)));
    expect(winners).toEqual(new Set(['a', 'c']));
    expect(electAnnouncer('10.0.0.1', ['c', 'a'])).toBe(electAnnouncer('10.0.0.1', ['a', 'c']));
    expect(electAnnouncer('10.0.0.1', [])).toBeUndefined();
  });

  it('guards announced addresses: whatever kube-proxy did not DNAT is dropped', () => {
    expect(guardRules(['10.0.0.11', '10.0.0.10'])).toBe(`*filter\n:${LB_INPUT_CHAIN} - [0:0]\n-F ${LB_INPUT_CHAIN}\n-A ${LB_INPUT_CHAIN} -d 10.0.0.10/32 -j DROP\n-A ${LB_INPUT_CHAIN} -d 10.0.0.11/32 -j DROP\nCOMMIT\n`);
  });
});

describe('load-balancer manifests and BGP config', () => {
  const ctx = { settings: base, versions: {}, fips: false, root: '/' } as unknown as ManifestContext;

  it('least privilege: read Services and Nodes, write only Services\' status; every object labelled and listed for removal', () => {
    const objs = featureObjects('load-balancer', ctx) as Array<{ kind: string; metadata: { labels: Record<string, string> }; rules?: Array<{ resources: string[]; verbs: string[] }>; subjects?: unknown[] }>;
    expect(objs.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding']);
    for (const o of objs) expect(o.metadata.labels[FEATURE_LABEL]).toBe('load-balancer');
    const role = objs.find((o) => o.kind === 'ClusterRole')!;
    const writes = role.rules!.filter((r) => r.verbs.some((v) => !['get', 'list', 'watch'].includes(v)));
    expect(writes).toEqual([{ apiGroups: [''], resources: ['services/status'], verbs: ['update', 'patch'] }]);
    expect(role.rules!.flatMap((r) => r.resources)).not.toContain('secrets');
    expect(objs.find((o) => o.kind === 'ClusterRoleBinding')!.subjects).toEqual([{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'k8sd:network' }]);
    expect(FEATURE_KINDS['load-balancer'].map((k) => k.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding']);
  });

  it('gobgpd: the node as router id, one peer at its port, no listening socket', () => {
    const s = applyFeatureChanges(withPool, {
      'load-balancer.bgp-mode': true, 'load-balancer.bgp-local-asn': 64512, 'load-balancer.bgp-peer-address': '10.0.0.1', 'load-balancer.bgp-peer-asn': 64513, 'load-balancer.bgp-peer-port': 1179,
    }, facts)['load-balancer'];
    const toml = gobgpdConfig(s, '10.0.0.5');
    expect(toml).toContain('as = 64512\n  router-id = "10.0.0.5"\n  port = -1');
    expect(toml).toContain('neighbor-address = "10.0.0.1"\n    peer-as = 64513');
    expect(toml).toContain('remote-port = 1179');
    expect(toml).toContain('afi-safi-name = "ipv4-unicast"');
    expect(toml).not.toContain('ipv6');
  });
});
