// The external-load-balancer relation: the request the leader publishes, the response it reads,
// and where the allocated address goes (certificate SANs, kubeconfig server). State in → state out.
import { describe, expect, it } from 'vitest';
import { Context, findRelation, type RelationState, type State } from '../../runtime/src/testing/index.js';
import { FakeCluster } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sCharm } from '../src/charm.js';
import { LB_WAITING_MESSAGE, loadBalancerServer, parseLoadBalancerResponse } from '../src/load-balancer.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;

function lbRelation(response?: Record<string, unknown> | string): RelationState {
  const text = typeof response === 'string' ? response : response ? JSON.stringify(response) : undefined;
  return { id: 9, endpoint: 'external-load-balancer', remoteApp: 'lb', remoteAppData: text === undefined ? {} : { response: text } };
}

function leader(): { cluster: FakeCluster; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  return { cluster, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

describe('k8s charm: external-load-balancer request', () => {
  it('the leader asks for TCP 443 → 6443 with an HTTPS /livez health check, and waits for an address before bootstrap', async () => {
    const { cluster, ctx } = leader();
    const lb = lbRelation();
    const out = await ctx.run(ctx.on.relationCreated(lb), { leader: true, relations: [PEER, lb] });
    expect(JSON.parse(findRelation(out, 'external-load-balancer')?.localAppData?.request ?? '{}')).toEqual({
      name: 'k8s-kube-apiserver',
      protocol: 'tcp',
      port_mapping: { '443': 6443 },
      public: true,
      health_checks: [{ protocol: 'https', port: 6443, path: '/livez', interval: 30, retries: 3 }],
      sans: [],
    });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: LB_WAITING_MESSAGE });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it('a non-leader writes no request', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-1');
    machine.snap = { ...INSTALLED_SNAP };
    const ctx = new Context(k8sCharm(machine.deps()), k8sMeta, { unitId: 1 });
    const lb = lbRelation();
    const out = await ctx.run(ctx.on.relationCreated(lb), { leader: false, relations: [PEER, lb] });
    expect(findRelation(out, 'external-load-balancer')?.localAppData ?? {}).toEqual({});
  });
});

describe('k8s charm: external-load-balancer response', () => {
  async function bootstrappedBehind(address: string): Promise<{ cluster: FakeCluster; ctx: Context; state: State }> {
    const { cluster, ctx } = leader();
    const lb = lbRelation({ address, success: true, name: 'k8s-kube-apiserver' });
    const state = await ctx.run(ctx.on.relationChanged(lb), { leader: true, config: { 'kube-apiserver-extra-sans': 'api.example.com' }, relations: [PEER, lb] });
    return { cluster, ctx, state };
  }

  it('puts the address into the API server certificate at bootstrap', async () => {
    const { cluster, state } = await bootstrappedBehind('203.0.113.7');
    expect(cluster.bootstrapDocument?.['extra-sans']).toEqual(['api.example.com', '203.0.113.7']);
    expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('get-kubeconfig points at https://<address>:443, unless a server is given', async () => {
    const { cluster, ctx, state } = await bootstrappedBehind('203.0.113.7');
    await ctx.run(ctx.on.action('get-kubeconfig'), state);
    expect(cluster.commands).toContain('node-0: k8s config --server https://203.0.113.7:443');
    expect(ctx.actionResults?.kubeconfig).toContain('server: https://203.0.113.7:443');
    await ctx.run(ctx.on.action('get-kubeconfig', { server: 'https://10.0.0.9:6443' }), state);
    expect(cluster.commands).toContain('node-0: k8s config --server https://10.0.0.9:6443');
    expect(loadBalancerServer('2001:db8::7')).toBe('https://[2001:db8::7]:443');
  });

  it('an address that arrives after bootstrap blocks until refresh-certs adds it, which the action then does', async () => {
    const { cluster, ctx } = leader();
    const bootstrapped = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER] });
    const lb = lbRelation({ address: 'lb.example.com', success: true });
    const related = await ctx.run(ctx.on.relationChanged(lb), { ...bootstrapped, relations: [...bootstrapped.relations, lb] });
    expect(related.unitStatus).toEqual({
      status: 'blocked',
      message: "the external load balancer's address lb.example.com is not in the API server certificate; run the refresh-certs action to add it",
    });
    const refreshed = await ctx.run(ctx.on.action('refresh-certs', { 'expires-in': '1y' }), related);
    expect(cluster.commands).toContain('node-0: k8s refresh-certs --expires-in 1y --extra-sans lb.example.com');
    const after = await ctx.run(ctx.on.updateStatus(), refreshed);
    expect(after.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('is Blocked, with the provider’s message, when the load balancer refuses', async () => {
    const { cluster, ctx } = leader();
    const lb = lbRelation({ success: false, message: 'no free public address' });
    const out = await ctx.run(ctx.on.relationChanged(lb), { leader: true, relations: [PEER, lb] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'external-load-balancer: no free public address' });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });

  it('reads responses strictly', () => {
    expect(parseLoadBalancerResponse(undefined)).toEqual({ kind: 'pending' });
    expect(parseLoadBalancerResponse('{"success": true}')).toEqual({ kind: 'pending' });
    expect(parseLoadBalancerResponse('not json')).toEqual({ kind: 'failed', message: 'response is not JSON' });
    expect(parseLoadBalancerResponse('{"address": "a b"}')).toEqual({ kind: 'failed', message: "response address 'a b' is neither an IP address nor a DNS name" });
    expect(parseLoadBalancerResponse('{"address": "10.0.0.1"}')).toEqual({ kind: 'ready', address: '10.0.0.1' });
  });
});
