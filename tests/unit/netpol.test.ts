import { describe, expect, it } from 'vitest';
import { chainName, compileNetworkPolicies, FORWARD_CHAIN, NetworkPolicyView, PodView, selectorMatches } from '../../src/k8sd/features/netpol/compile.js';

const pod = (name: string, ip: string, labels: Record<string, string>, extra: Partial<PodView> = {}): PodView => ({
  uid: `uid-${name}`,
  namespace: 'default',
  name,
  labels,
  ips: [ip],
  nodeName: 'n1',
  hostNetwork: false,
  namedPorts: {},
  ...extra,
});
const ns = [
  { name: 'default', labels: { 'kubernetes.io/metadata.name': 'default' } },
  { name: 'other', labels: { 'kubernetes.io/metadata.name': 'other', team: 'a' } },
];
const server = pod('server', '10.1.0.5', { app: 'server' }, { namedPorts: { http: [['TCP', 8080]] } });
const client = pod('client', '10.1.1.7', { role: 'client' }, { nodeName: 'n2' });
const stranger = pod('stranger', '10.1.2.9', {}, { nodeName: 'n3', namespace: 'other' });
const pods = [server, client, stranger];
const policy = (p: Partial<NetworkPolicyView>): NetworkPolicyView => ({ namespace: 'default', name: 'p', podSelector: {}, ...p });

function rules(node: string, policies: NetworkPolicyView[]): string[] {
  return compileNetworkPolicies(node, pods, ns, policies).restore.split('\n');
}

describe('NetworkPolicy compiler', () => {
  it('leaves pods alone that no policy selects', () => {
    const c = compileNetworkPolicies('n1', pods, ns, []);
    expect(c.isolated).toEqual([]);
    expect(c.chains).toEqual([FORWARD_CHAIN]);
    expect(c.restore).toContain(`-A ${FORWARD_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  });

  it('deny-all ingress: a chain for the local selected pod that ends in DROP, nothing allowed', () => {
    const r = rules('n1', [policy({ podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress'] })]);
    const chain = chainName('IN', server.uid);
    expect(r).toContain(`-A ${FORWARD_CHAIN} -d 10.1.0.5/32 -m comment --comment "default/server" -j ${chain}`);
    expect(r.filter((l) => l.startsWith(`-A ${chain}`))).toEqual([`-A ${chain} -j DROP`]);
  });

  it('only the node of a pod programs it', () => {
    const c = compileNetworkPolicies('n2', pods, ns, [policy({ podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Ingress'] })]);
    expect(c.isolated).toEqual([]);
  });

  it('allow from a pod selector, on a named port of the selected pod', () => {
    const r = rules('n1', [
      policy({ podSelector: { matchLabels: { app: 'server' } }, ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 'http' }] }] }),
    ]);
    const chain = chainName('IN', server.uid);
    expect(r).toContain(`-A ${chain} -s 10.1.1.7/32 -p tcp -m tcp --dport 8080 -j RETURN`);
    expect(r.some((l) => l.includes('10.1.2.9'))).toBe(false);
  });

  it('namespace selectors, port ranges and UDP', () => {
    const r = rules('n1', [
      policy({ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }], ports: [{ protocol: 'UDP', port: 5000, endPort: 5010 }] }] }),
    ]);
    expect(r).toContain(`-A ${chainName('IN', server.uid)} -s 10.1.2.9/32 -p udp -m udp --dport 5000:5010 -j RETURN`);
  });

  it('an ipBlock with except: mark, unmark the excepted range, RETURN when still marked', () => {
    const r = rules('n1', [policy({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.2.0/24'] } }] }] })]);
    const chain = chainName('IN', server.uid);
    const mine = r.filter((l) => l.startsWith(`-A ${chain}`));
    expect(mine).toEqual([
      `-A ${chain} -j MARK --set-xmark 0x0/0x40000`,
      `-A ${chain} -s 10.0.0.0/8 -j MARK --set-xmark 0x40000/0x40000`,
      `-A ${chain} -s 10.1.2.0/24 -j MARK --set-xmark 0x0/0x40000`,
      `-A ${chain} -m mark --mark 0x40000/0x40000 -j RETURN`,
      `-A ${chain} -j DROP`,
    ]);
  });

  it('egress: deny all, or allow to selected pods and ports only', () => {
    const deny = rules('n1', [policy({ podSelector: { matchLabels: { app: 'server' } }, policyTypes: ['Egress'] })]);
    const out = chainName('OUT', server.uid);
    expect(deny).toContain(`-A ${FORWARD_CHAIN} -s 10.1.0.5/32 -m comment --comment "default/server" -j ${out}`);
    expect(deny.filter((l) => l.startsWith(`-A ${out}`))).toEqual([`-A ${out} -j DROP`]);
    const allow = rules('n1', [
      policy({ podSelector: { matchLabels: { app: 'server' } }, egress: [{ to: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ port: 53, protocol: 'UDP' }] }] }),
    ]);
    expect(allow).toContain(`-A ${out} -d 10.1.1.7/32 -p udp -m udp --dport 53 -j RETURN`);
    // A policy with egress rules and no policyTypes is both Ingress and Egress.
    expect(allow.some((l) => l.startsWith(`:${chainName('IN', server.uid)}`))).toBe(true);
  });

  it('an empty from allows every source; host-network pods are never isolated', () => {
    const r = rules('n1', [policy({ podSelector: {}, ingress: [{}] })]);
    expect(r).toContain(`-A ${chainName('IN', server.uid)} -s 0.0.0.0/0 -j RETURN`);
    const c = compileNetworkPolicies('n1', [pod('hn', '10.0.0.1', {}, { hostNetwork: true })], ns, [policy({ podSelector: {} })]);
    expect(c.isolated).toEqual([]);
  });

  it('label selector expressions', () => {
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }, { a: '2' })).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '1' })).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Exists' }] }, {})).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, {})).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, { a: '1' })).toBe(false);
    expect(selectorMatches({}, { any: 'thing' })).toBe(true);
  });
});

describe('NetworkPolicy objects from @kubernetes/client-node', () => {
  it('reads an ingress rule\'s peers from _from (the client renames from)', async () => {
    const { policyView } = await import('../../src/k8sd/features/netpol/enforcer.js');
    const v = policyView({
      metadata: { namespace: 'default', name: 'p' },
      spec: {
        podSelector: { matchLabels: { app: 'server' } },
        ingress: [{ _from: [{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }], ports: [{ port: 8080 }] }],
      },
    });
    expect(v.ingress?.[0]?.from).toEqual([{ podSelector: { matchLabels: { role: 'client' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }]);
    const r = compileNetworkPolicies('n1', pods, ns, [v]).restore;
    expect(r).not.toContain('-s 10.1.2.9/32');
    expect(r).toContain('-s 10.1.1.7/32 -p tcp -m tcp --dport 8080 -j RETURN');
  });
});
