// The options of Canonical's k8s charm, state in → state out: feature settings reach the cluster
// through the bootstrap document and then `k8s set`; taints and accepted insecure flags go into
// the node documents; a bad value blocks the unit naming the option and changes nothing.
import { describe, expect, it } from 'vitest';
import { Context, type State, type StateInput } from '../../runtime/src/testing/index.js';
import { FakeCluster, type FakeMachine } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { k8sCharm } from '../src/charm.js';

const PEER = { id: 1, endpoint: 'cluster' } as const;

function leader(): { cluster: FakeCluster; machine: FakeMachine; ctx: Context } {
  const cluster = new FakeCluster();
  const machine = cluster.machine('node-0');
  machine.snap = { ...INSTALLED_SNAP };
  return { cluster, machine, ctx: new Context(k8sCharm(machine.deps()), k8sMeta) };
}

async function bootstrapped(config: StateInput['config'] = {}): Promise<{ cluster: FakeCluster; ctx: Context; state: State }> {
  const { cluster, ctx } = leader();
  const state = await ctx.run(ctx.on.leaderElected(), { leader: true, config, relations: [PEER] });
  expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  return { cluster, ctx, state };
}

const setCommands = (cluster: FakeCluster, from = 0): string[] => cluster.commands.slice(from).filter((line) => line.includes('k8s set'));

describe('k8s charm: feature options', () => {
  it('bootstraps with the enabled features\' settings under cluster-config', async () => {
    const { cluster } = await bootstrapped({
      'dns-cluster-domain': 'k8s.example',
      'dns-service-ip': '10.152.183.53',
      'dns-upstream-nameservers': '1.1.1.1 9.9.9.9:53',
      'local-storage-enabled': true,
      'local-storage-local-path': '/srv/volumes',
      'local-storage-reclaim-policy': 'Retain',
      'load-balancer-cidrs': '10.0.0.0/28', // its feature is disabled: kept back
      'metrics-server-enabled': true,
    });
    expect(cluster.bootstrapDocument?.['cluster-config']).toEqual({
      network: { enabled: true },
      dns: { enabled: true, 'cluster-domain': 'k8s.example', 'service-ip': '10.152.183.53', 'upstream-nameservers': ['1.1.1.1', '9.9.9.9:53'] },
      gateway: { enabled: false },
      ingress: { enabled: false },
      'load-balancer': { enabled: false },
      'local-storage': { enabled: true, 'local-path': '/srv/volumes', 'reclaim-policy': 'Retain', default: true },
      'metrics-server': { enabled: true },
    });
    expect(setCommands(cluster)).toEqual([]);
  });

  it('sends only what changed with one `k8s set`, and nothing when nothing changed', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    const before = cluster.commands.length;
    const out = await ctx.run(ctx.on.configChanged(), { ...state, config: { 'dns-upstream-nameservers': '1.1.1.1,8.8.8.8', 'dns-cluster-domain': 'k8s.example' } });
    expect(setCommands(cluster, before)).toEqual(['node-0: k8s set dns.cluster-domain=k8s.example dns.upstream-nameservers=1.1.1.1,8.8.8.8']);
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    const again = cluster.commands.length;
    await ctx.run(ctx.on.configChanged(), out);
    expect(setCommands(cluster, again)).toEqual([]);
  });

  it('enables the load balancer together with its settings', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    const before = cluster.commands.length;
    await ctx.run(ctx.on.configChanged(), {
      ...state,
      config: {
        'load-balancer-enabled': true,
        'load-balancer-cidrs': '10.0.0.0/28 10.0.1.10-10.0.1.20',
        'load-balancer-l2-mode': true,
        'load-balancer-l2-interfaces': 'eth0 eth1',
      },
    });
    expect(setCommands(cluster, before)).toEqual([
      'node-0: k8s set load-balancer.enabled=true load-balancer.cidrs=10.0.0.0/28,10.0.1.10-10.0.1.20 load-balancer.l2-mode=true ' +
        'load-balancer.l2-interfaces=eth0,eth1 load-balancer.bgp-mode=false load-balancer.bgp-local-asn=64512 load-balancer.bgp-peer-asn=64513 ' +
        'load-balancer.bgp-peer-port=179',
    ]);
  });

  it('maps ingress, gateway and metrics-server options', async () => {
    const { cluster, ctx, state } = await bootstrapped();
    const before = cluster.commands.length;
    await ctx.run(ctx.on.configChanged(), {
      ...state,
      config: { 'ingress-enabled': true, 'ingress-default-tls-secret': 'wildcard-cert', 'gateway-enabled': true, 'metrics-server-enabled': false },
    });
    expect(setCommands(cluster, before)).toEqual([
      'node-0: k8s set gateway.enabled=true ingress.enabled=true ingress.enable-proxy-protocol=false ingress.default-tls-secret=wildcard-cert metrics-server.enabled=false',
    ]);
  });
});

describe('k8s charm: node options', () => {
  it('puts bootstrap-node-taints on the kubelet (--register-with-taints) and accept-insecure-node-args beside the args', async () => {
    const { cluster } = await bootstrapped({
      'bootstrap-node-taints': 'dedicated=cp:NoSchedule critical:NoExecute',
      'kubelet-extra-args': 'read-only-port=10255',
      'accept-insecure-node-args': 'kubelet:read-only-port',
    });
    expect(cluster.bootstrapDocument?.['extra-node-kubelet-args']).toEqual({
      '--read-only-port': '10255',
      '--register-with-taints': 'dedicated=cp:NoSchedule,critical:NoExecute',
    });
    expect(cluster.bootstrapDocument?.['accept-insecure-node-args']).toEqual({ kubelet: ['--read-only-port'] });
  });
});

const BAD_VALUES: ReadonlyArray<[string, string | number | boolean, string]> = [
  ['channel', 'edge/1.33', "channel: 'edge/1.33' is not a snap channel"],
  ['dns-cluster-domain', 'Not_A_Domain', "dns-cluster-domain: 'Not_A_Domain' is not a DNS domain"],
  ['dns-service-ip', '10.152.183', "dns-service-ip: '10.152.183' is not an IP address"],
  ['dns-upstream-nameservers', '1.1.1.1 dns.google', "dns-upstream-nameservers: 'dns.google' is neither an IP address"],
  ['local-storage-local-path', 'relative/dir', "local-storage-local-path: 'relative/dir' is not a plain absolute path"],
  ['local-storage-reclaim-policy', 'Recycle', "local-storage-reclaim-policy: 'Recycle' is not Delete or Retain"],
  ['load-balancer-cidrs', '10.0.0.0/33', "load-balancer-cidrs: '10.0.0.0/33' is neither a CIDR"],
  ['load-balancer-l2-interfaces', 'eth0;reboot', "load-balancer-l2-interfaces: 'eth0;reboot' is not a network interface name"],
  ['load-balancer-bgp-local-asn', 0, 'load-balancer-bgp-local-asn: 0 is outside 1..4294967294'],
  ['load-balancer-bgp-peer-address', 'router', "load-balancer-bgp-peer-address: 'router' is not an IP address"],
  ['load-balancer-bgp-peer-port', 70000, 'load-balancer-bgp-peer-port: 70000 is outside 1..65535'],
  ['ingress-default-tls-secret', 'Bad Name', "ingress-default-tls-secret: 'Bad Name' is not a Kubernetes Secret name"],
  ['bootstrap-node-taints', 'dedicated=cp', "bootstrap-node-taints: 'dedicated=cp' is not a taint such as key=value:NoSchedule"],
  ['bootstrap-node-taints', 'a:Sometimes', "bootstrap-node-taints: 'a:Sometimes' is not a taint"],
  ['accept-insecure-node-args', 'kubelet:read-only-port', "accept-insecure-node-args: 'kubelet:read-only-port' accepts --read-only-port, which kubelet-extra-args does not set"],
  ['accept-insecure-node-args', 'read-only-port', "accept-insecure-node-args: 'read-only-port' is not <service>:<flag>"],
  ['node-labels', 'team', "node-labels: 'team' is not key=value"],
];

describe('k8s charm: bad option values', () => {
  it.each(BAD_VALUES)('%s=%j blocks the unit before bootstrap, naming the option', async (option, value, message) => {
    const { cluster, ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, config: { [option]: value, 'load-balancer-enabled': true, 'ingress-enabled': true, 'local-storage-enabled': true }, relations: [PEER] });
    expect(out.unitStatus.status).toBe('blocked');
    expect(out.unitStatus.message.startsWith(message)).toBe(true);
    expect(cluster.commands.filter((line) => line.includes('k8s bootstrap') || line.includes('k8s set'))).toEqual([]);
  });

  it.each(BAD_VALUES.filter(([option]) => option !== 'channel'))('%s=%j after bootstrap blocks the unit and sends no `k8s set`', async (option, value, message) => {
    const { cluster, ctx, state } = await bootstrapped();
    const before = cluster.commands.length;
    const out = await ctx.run(ctx.on.configChanged(), { ...state, config: { [option]: value, 'load-balancer-enabled': true } });
    expect(out.unitStatus.status).toBe('blocked');
    expect(out.unitStatus.message.startsWith(message)).toBe(true);
    expect(setCommands(cluster, before)).toEqual([]);
  });

  it('load-balancer-bgp-mode without a peer address blocks, naming the peer option', async () => {
    const { ctx } = leader();
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, config: { 'load-balancer-enabled': true, 'load-balancer-bgp-mode': true }, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'load-balancer-bgp-peer-address: load-balancer-bgp-mode=true needs the BGP peer address' });
  });
});
