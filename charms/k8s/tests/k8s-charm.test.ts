import { describe, expect, it } from 'vitest';
import { Context, ActionFailed, InconsistentStateError, findRelation, type State, type StateInput } from '../../runtime/src/testing/index.js';
import { FakeCluster, type FakeMachine } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, k8sMeta, onlySecret, relationById, updateRelation } from '../../k8s-common/tests/scenario-helpers.js';
import { clusterNameFor } from '../../k8s-common/src/protocol.js';
import { DEFAULT_MODEL } from '../../runtime/src/testing/state.js';
import { k8sCharm } from '../src/charm.js';

const CLUSTER_NAME = clusterNameFor('k8s', DEFAULT_MODEL.uuid);
const PEER = { id: 1, endpoint: 'cluster' } as const;

function contextFor(machine: FakeMachine, unitId = 0): Context {
  return new Context(k8sCharm(machine.deps()), k8sMeta, { unitId });
}

function installedMachine(cluster: FakeCluster, name: string): FakeMachine {
  const machine = cluster.machine(name);
  machine.snap = { ...INSTALLED_SNAP };
  return machine;
}

/** A leader that has bootstrapped the cluster; returns its State and context. */
async function bootstrappedLeader(config: StateInput['config'] = {}): Promise<{ cluster: FakeCluster; machine: FakeMachine; ctx: Context; state: State }> {
  const cluster = new FakeCluster();
  const machine = installedMachine(cluster, 'node-0');
  const ctx = contextFor(machine);
  const state = await ctx.run(ctx.on.leaderElected(), { leader: true, config, relations: [PEER] });
  return { cluster, machine, ctx, state };
}

describe('k8s charm: install', () => {
  it('installs the k8s snap held, publishes its version and waits for a token', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-1');
    const ctx = contextFor(machine, 1);

    const out = await ctx.run(ctx.on.install(), { relations: [PEER], config: { channel: '1.36/stable' } });

    expect(cluster.commands.slice(0, 2)).toEqual(['node-1: snap install k8s --classic --channel 1.36/stable', 'node-1: snap refresh --hold k8s']);
    expect(machine.snap).toEqual({ version: 'v1.36.0', held: true });
    expect(out.workloadVersion).toBe('v1.36.0');
    expect(ctx.unitStatusHistory[0]).toEqual({ status: 'maintenance', message: 'Installing k8s snap' });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for cluster token' });
    expect(findRelation(out, 'cluster')?.localUnitData).toEqual({ 'node-name': 'node-1', 'node-address': '192.0.2.0' });
  });

  it('holds an installed snap that is not held, without reinstalling it', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-1');
    machine.snap = { version: 'v1.36.0', held: false };
    const ctx = contextFor(machine, 1);
    await ctx.run(ctx.on.upgradeCharm(), { relations: [PEER] });
    expect(cluster.commands.filter((line) => line.includes('snap '))).toEqual(['node-1: snap refresh --hold k8s']);
  });

  it('is Blocked when the snap cannot be installed, without failing the hook', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-0');
    machine.installError = 'cannot reach the snap store';
    const ctx = contextFor(machine);
    const out = await ctx.run(ctx.on.install(), { relations: [PEER], config: { channel: '1.36/stable' } });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'Failed to install snaps.' });
    expect(ctx.jujuLog.some((log) => log.level === 'ERROR' && log.message.includes('cannot reach the snap store'))).toBe(true);
  });

  it('waits for k8sd before doing anything with the cluster', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('node-0', { k8sdReady: false });
    machine.snap = { ...INSTALLED_SNAP };
    const ctx = contextFor(machine);
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for k8sd' });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });
});

describe('k8s charm: leader-elected bootstraps the cluster', () => {
  it('bootstraps through `k8s bootstrap --file -` with the config as Canonical bootstrap keys', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader({
      'bootstrap-pod-cidr': '10.1.0.0/16,fd01::/108',
      'gateway-enabled': true,
      'kube-apiserver-extra-sans': 'k8s.example.com 10.0.0.100',
      'kubelet-extra-args': 'max-pods=200 --v=2',
      'datastore-extra-args': 'quota-backend-bytes=8589934592',
    });

    expect(cluster.commands).toContain('node-0: k8s bootstrap --file - --name node-0 --address 192.0.2.0');
    expect(cluster.bootstrapDocument).toEqual({
      'cluster-config': {
        network: { enabled: true },
        dns: { enabled: true },
        gateway: { enabled: true },
        ingress: { enabled: false },
        'load-balancer': { enabled: false },
        'local-storage': { enabled: true, default: true },
        'metrics-server': { enabled: true },
      },
      'pod-cidr': '10.1.0.0/16,fd01::/108',
      'service-cidr': '10.152.183.0/24',
      'extra-sans': ['k8s.example.com', '10.0.0.100'],
      'extra-node-kubelet-args': { '--max-pods': '200', '--v': '2' },
      'extra-node-etcd-args': { '--quota-backend-bytes': '8589934592' },
    });
    expect(ctx.unitStatusHistory).toContainEqual({ status: 'maintenance', message: 'Bootstrapping Cluster' });

    const peer = findRelation(state, 'cluster');
    expect(peer?.localAppData).toMatchObject({
      'cluster-name': CLUSTER_NAME,
      'node.k8s/0': 'node-0',
      'bootstrap-config': JSON.stringify({
        'bootstrap-datastore': '',
        'bootstrap-pod-cidr': '10.1.0.0/16,fd01::/108',
        'bootstrap-service-cidr': '10.152.183.0/24',
      }),
    });
    expect(peer?.localUnitData).toEqual({ 'node-name': 'node-0', joined: CLUSTER_NAME });
    expect(state.openedPorts).toEqual([{ protocol: 'tcp', port: 6443 }]);
    expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(cluster.labels.get('node-0')).toEqual({ 'juju-application': 'k8s', 'juju-charm': 'k8s' });
  });

  it('bootstraps once: the next hooks only check the cluster', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    const before = cluster.commands.length;
    const out = await ctx.run(ctx.on.configChanged(), state);
    const after = cluster.commands.slice(before);
    expect(after.some((line) => line.includes('bootstrap'))).toBe(false);
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('adopts a cluster bootstrapped by a hook whose relation data was lost', async () => {
    const cluster = new FakeCluster();
    const machine = installedMachine(cluster, 'node-0');
    cluster.members.set('node-0', { role: 'control-plane', address: '192.0.2.0' });
    const ctx = contextFor(machine);
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, relations: [PEER] });
    expect(cluster.commands.some((line) => line.includes('k8s bootstrap'))).toBe(false);
    expect(findRelation(out, 'cluster')?.localAppData?.['cluster-name']).toBe(CLUSTER_NAME);
  });

  it('passes fips: true to bootstrap only on a FIPS-enabled machine', async () => {
    const cluster = new FakeCluster();
    const plain = installedMachine(cluster, 'node-0');
    const blocked = await contextFor(plain).run(contextFor(plain).on.leaderElected(), { leader: true, config: { fips: true }, relations: [PEER] });
    expect(blocked.unitStatus.status).toBe('blocked');
    expect(blocked.unitStatus.message).toMatch(/^fips=true but this machine is not FIPS-enabled/);
    expect(cluster.bootstrapDocument).toBeUndefined();

    plain.fips = true;
    const ctx = contextFor(plain);
    await ctx.run(ctx.on.leaderElected(), { leader: true, config: { fips: true }, relations: [PEER] });
    expect(cluster.bootstrapDocument?.fips).toBe(true);
  });

  it('blocks on an option k8s cannot use, naming it', async () => {
    const cluster = new FakeCluster();
    const machine = installedMachine(cluster, 'node-0');
    const ctx = contextFor(machine);
    const out = await ctx.run(ctx.on.leaderElected(), { leader: true, config: { 'bootstrap-pod-cidr': '10.1.0.0/16,10.2.0.0/16' }, relations: [PEER] });
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'bootstrap-pod-cidr: give at most one IPv4 and one IPv6 CIDR' });
    const external = await ctx.run(ctx.on.configChanged(), { leader: true, config: { 'bootstrap-datastore': 'external' }, relations: [PEER] });
    expect(external.unitStatus).toEqual({
      status: 'blocked',
      message: "bootstrap-datastore: use 'etcd' for an external etcd (through the etcd integration), or 'managed-etcd'",
    });
    expect(cluster.bootstrapDocument).toBeUndefined();
  });
});

describe('k8s charm: config-changed', () => {
  it('blocks with "revert to" when an immutable option changes after bootstrap, and recovers when reverted', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    const before = cluster.commands.length;

    const changed = await ctx.run(ctx.on.configChanged(), { ...state, config: { 'bootstrap-pod-cidr': '10.2.0.0/16' } });
    expect(changed.unitStatus).toEqual({ status: 'blocked', message: "bootstrap-pod-cidr is immutable; revert to '10.1.0.0/16'" });
    expect(cluster.commands.slice(before).some((line) => line.includes('bootstrap'))).toBe(false);

    const twoChanged = await ctx.run(ctx.on.configChanged(), {
      ...state,
      config: { 'bootstrap-datastore': 'etcd', 'bootstrap-service-cidr': '10.153.0.0/24' },
    });
    expect(twoChanged.unitStatus).toEqual({ status: 'blocked', message: "bootstrap-datastore is immutable; revert to ''" });

    const reverted = await ctx.run(ctx.on.configChanged(), { ...changed, config: {} });
    expect(reverted.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('applies a feature toggle to the running cluster with `k8s set`', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    const out = await ctx.run(ctx.on.configChanged(), { ...state, config: { 'ingress-enabled': true, 'dns-enabled': false } });
    // An enabled feature brings its settings along (ingress-enable-proxy-protocol's default here).
    expect(cluster.commands).toContain('node-0: k8s set dns.enabled=false ingress.enabled=true ingress.enable-proxy-protocol=false');
    expect(JSON.parse(findRelation(out, 'cluster')?.localAppData?.features ?? '{}')).toMatchObject({ 'ingress.enabled': 'true', 'dns.enabled': 'false' });
    const again = cluster.commands.length;
    await ctx.run(ctx.on.configChanged(), out);
    expect(cluster.commands.slice(again).some((line) => line.includes('k8s set'))).toBe(false);
  });

  it('labels nothing on a node whose status shows no kubelet, and is Active', async () => {
    const cluster = new FakeCluster();
    const machine = installedMachine(cluster, 'node-0');
    machine.services = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'];
    const ctx = contextFor(machine);
    const state = await ctx.run(ctx.on.leaderElected(), { leader: true, config: { 'node-labels': 'team=a' }, relations: [PEER] });
    expect(state.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(cluster.commands.some((line) => line.includes('kubectl label'))).toBe(false);
    expect(ctx.jujuLog).toContainEqual({ level: 'WARNING', message: 'node-labels not applied: node-0 runs no kubelet, so it is not a Kubernetes node' });

    // Once the node runs a kubelet, the labels go on.
    machine.services = [...machine.services, 'kubelet'];
    await ctx.run(ctx.on.updateStatus(), state);
    expect(cluster.labels.get('node-0')).toEqual({ team: 'a', 'juju-application': 'k8s', 'juju-charm': 'k8s' });
  });

  it('relabels the node when node-labels change, removing labels it no longer wants', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader({ 'node-labels': 'team=a tier=web' });
    expect(cluster.labels.get('node-0')).toMatchObject({ team: 'a', tier: 'web' });
    await ctx.run(ctx.on.configChanged(), { ...state, config: { 'node-labels': 'team=b' } });
    expect(cluster.labels.get('node-0')).toEqual({ team: 'b', 'juju-application': 'k8s', 'juju-charm': 'k8s' });
  });

  it('asks for the refresh-certs action when an extra SAN is added after bootstrap', async () => {
    const { machine, ctx, state } = await bootstrappedLeader();
    const withSan = { ...state, config: { 'kube-apiserver-extra-sans': 'api.example.com' } };
    const blocked = await ctx.run(ctx.on.configChanged(), withSan);
    expect(blocked.unitStatus).toEqual({
      status: 'blocked',
      message: 'kube-apiserver-extra-sans changed; run the refresh-certs action to add api.example.com',
    });

    const refreshed = await ctx.run(ctx.on.action('refresh-certs', { 'expires-in': '1y' }), blocked);
    expect(machine.refreshedCerts).toEqual([{ expiresIn: '1y', extraSans: ['api.example.com'] }]);
    const settled = await ctx.run(ctx.on.updateStatus(), refreshed);
    expect(settled.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });
});

describe('k8s charm: control-plane units join through the peer relation', () => {
  it('the leader mints a control-plane token into a secret, and the peer joins with it', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader({ 'kube-apiserver-extra-sans': 'api.example.com', 'bootstrap-node-taints': 'a=b:NoSchedule' });
    const peerMachine = installedMachine(cluster, 'node-1');
    const peerCtx = contextFor(peerMachine, 1);

    // node-1 announces itself.
    const leaderPeer = findRelation(state, 'cluster');
    const peerView = {
      id: 1,
      endpoint: 'cluster',
      localAppData: leaderPeer?.localAppData ?? {},
      remoteUnitsData: { 0: leaderPeer?.localUnitData ?? {} },
    };
    const announced = await peerCtx.run(peerCtx.on.relationJoined(peerView, { remoteUnit: 0 }), { config: state.config, relations: [peerView] });
    expect(announced.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for cluster token' });

    // The leader sees node-1 and issues its token.
    const withPeer = updateRelation(state, 1, { remoteUnitsData: { 1: findRelation(announced, 'cluster')?.localUnitData ?? {} } });
    const issued = await ctx.run(ctx.on.relationChanged(relationById(withPeer, 1), { remoteUnit: 1 }), withPeer);
    expect(cluster.commands).toContain('node-0: k8s get-join-token node-1 --address 192.0.2.0');
    const secret = onlySecret(issued);
    expect(secret.owner).toBe('app');
    expect(secret.revisions[1]).toEqual({ token: 'cp-token-node-1-1', attempt: '1' });
    expect(secret.grants).toEqual({ 1: ['k8s/1'] });
    expect(findRelation(issued, 'cluster')?.localAppData?.['join-secret.k8s/1']).toBe(secret.id);

    // node-1 (same application, so it may read the app-owned secret) joins.
    const sharedBag = findRelation(issued, 'cluster')?.localAppData ?? {};
    const joining = updateRelation(announced, 1, { localAppData: sharedBag });
    const joined = await peerCtx.run(peerCtx.on.relationChanged(relationById(joining, 1), { remoteUnit: 0 }), { ...joining, secrets: [secret] });
    expect(cluster.members.get('node-1')).toEqual({ role: 'control-plane', address: '192.0.2.0' });
    expect(peerMachine.joinDocument).toContain('api.example.com');
    expect(peerMachine.joinDocument).toContain("'--register-with-taints': a=b:NoSchedule");
    expect(findRelation(joined, 'cluster')?.localUnitData).toEqual({ 'node-name': 'node-1', 'node-address': '192.0.2.0', joined: CLUSTER_NAME });
    expect(joined.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(joined.openedPorts).toEqual([{ protocol: 'tcp', port: 6443 }]);

    // The leader cleans up: the secret goes, the record stays.
    const afterJoin = updateRelation(issued, 1, { remoteUnitsData: { 1: findRelation(joined, 'cluster')?.localUnitData ?? {} } });
    const cleaned = await ctx.run(ctx.on.relationChanged(relationById(afterJoin, 1), { remoteUnit: 1 }), afterJoin);
    expect(cleaned.secrets).toEqual([]);
    expect(findRelation(cleaned, 'cluster')?.localAppData?.['join-secret.k8s/1']).toBeUndefined();
    expect(findRelation(cleaned, 'cluster')?.localAppData?.['node.k8s/1']).toBe('node-1');
  });
});

describe('k8s charm: departures and removal', () => {
  async function twoNodeCluster(): Promise<{ cluster: FakeCluster; ctx: Context; state: State; peerMachine: FakeMachine }> {
    const { cluster, ctx, state } = await bootstrappedLeader();
    const peerMachine = installedMachine(cluster, 'node-1');
    cluster.members.set('node-1', { role: 'control-plane', address: '192.0.2.1' });
    const withPeer = updateRelation(state, 1, {
      localAppData: { ...findRelation(state, 'cluster')?.localAppData, 'node.k8s/1': 'node-1' },
      remoteUnitsData: { 1: { 'node-name': 'node-1', joined: CLUSTER_NAME } },
    });
    return { cluster, ctx, state: withPeer, peerMachine };
  }

  it('the leader removes the node of a departed control-plane unit', async () => {
    const { cluster, ctx, state } = await twoNodeCluster();
    const out = await ctx.run(ctx.on.relationDeparted(relationById(state, 1), { remoteUnit: 1 }), state);
    expect(cluster.commands).toContain('node-0: k8s remove-node node-1');
    expect(cluster.members.has('node-1')).toBe(false);
    expect(findRelation(out, 'cluster')?.localAppData?.['node.k8s/1']).toBeUndefined();
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('a departing unit waits until the leader removed its node, then removes the snap', async () => {
    const { cluster, ctx, state, peerMachine } = await twoNodeCluster();
    await ctx.run(ctx.on.relationDeparted(relationById(state, 1), { remoteUnit: 1 }), state);

    const peerCtx = contextFor(peerMachine, 1);
    const peerState: StateInput = {
      relations: [{ id: 1, endpoint: 'cluster', localUnitData: { 'node-name': 'node-1', joined: CLUSTER_NAME }, remoteUnitsData: { 0: {} } }],
    };
    const event = peerCtx.on.relationDeparted(peerState.relations?.[0] ?? PEER, { remoteUnit: 0, departingUnit: 'k8s/1' });
    const out = await peerCtx.run(event, peerState);
    const ownCommands = cluster.commands.filter((line) => line.startsWith('node-1'));
    expect(ownCommands).toEqual(['node-1: k8s status --output-format json', 'node-1: snap remove k8s --purge']);
    expect(peerMachine.sleeps).toEqual([]);
    expect(out.storedState.dying).toBe('true');
    expect(out.unitStatus).toEqual({ status: 'maintenance', message: 'Removed from the cluster' });

    // Later hooks (stop, remove) find nothing left to do.
    const removed = await peerCtx.run(peerCtx.on.remove(), out);
    expect(removed.unitStatus).toEqual({ status: 'maintenance', message: 'Removed from the cluster' });
  });

  it('a departing unit gives up waiting after a bounded time and still removes the snap', async () => {
    const { cluster, peerMachine } = await twoNodeCluster();
    const peerCtx = contextFor(peerMachine, 1);
    const relation = { id: 1, endpoint: 'cluster', localUnitData: { 'node-name': 'node-1', joined: CLUSTER_NAME }, remoteUnitsData: { 0: {} } };
    const out = await peerCtx.run(peerCtx.on.relationDeparted(relation, { remoteUnit: 0, departingUnit: 'k8s/1' }), { relations: [relation] });
    expect(peerMachine.sleeps).toEqual([10, 10, 10]);
    expect(peerCtx.jujuLog).toContainEqual({ level: 'WARNING', message: 'node node-1 is still a cluster member; removing the snap anyway' });
    expect(peerMachine.snap).toBeUndefined();
    expect(cluster.commands.at(-1)).toBe('node-1: snap remove k8s --purge');
    expect(out.unitStatus.status).toBe('maintenance');
  });

  it('a stopping leader removes its own node before the snap', async () => {
    const { cluster, ctx, state } = await twoNodeCluster();
    const out = await ctx.run(ctx.on.stop(), state);
    const tail = cluster.commands.slice(-2);
    expect(tail).toEqual(['node-0: k8s remove-node node-0', 'node-0: snap remove k8s --purge']);
    expect(out.unitStatus).toEqual({ status: 'maintenance', message: 'Removed from the cluster' });
  });

  it('forgets a unit that left before joining: its secret is removed and its token revoked', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    const announced = updateRelation(state, 1, { remoteUnitsData: { 1: { 'node-name': 'node-1' } } });
    const issued = await ctx.run(ctx.on.relationChanged(relationById(announced, 1), { remoteUnit: 1 }), announced);
    expect(cluster.tokens.has('node-1')).toBe(true);

    const out = await ctx.run(ctx.on.relationDeparted(relationById(issued, 1), { remoteUnit: 1 }), issued);
    expect(out.secrets).toEqual([]);
    expect(cluster.tokens.has('node-1')).toBe(false);
    expect(cluster.commands).toContain('node-0: k8s revoke-join-token node-1');
    expect(cluster.commands.some((line) => line.includes('remove-node'))).toBe(false);
    expect(Object.keys(findRelation(out, 'cluster')?.localAppData ?? {}).filter((key) => key.includes('k8s/1'))).toEqual([]);
  });
});

describe('k8s charm: actions', () => {
  it('get-kubeconfig returns the admin kubeconfig, optionally for another server', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    await ctx.run(ctx.on.action('get-kubeconfig'), state);
    expect(ctx.actionResults?.kubeconfig).toContain('server: https://192.0.2.0:6443');

    await ctx.run(ctx.on.action('get-kubeconfig', { server: 'https://lb.example.com:443' }), state);
    expect(ctx.actionResults?.kubeconfig).toContain('server: https://lb.example.com:443');
    expect(cluster.commands).toContain('node-0: k8s config --server https://lb.example.com:443');
  });

  it('get-kubeconfig fails on a unit that is not part of the cluster', async () => {
    const cluster = new FakeCluster();
    const ctx = contextFor(installedMachine(cluster, 'node-3'), 3);
    const run = ctx.run(ctx.on.action('get-kubeconfig'), { relations: [PEER] });
    await expect(run).rejects.toBeInstanceOf(ActionFailed);
    await expect(run).rejects.toThrow(/is this unit part of the cluster yet/);
  });

  it('refresh-certs refreshes with the configured SANs and reports the result', async () => {
    const { machine, ctx, state } = await bootstrappedLeader({ 'kube-apiserver-extra-sans': 'a.example.com,10.0.0.9' });
    await ctx.run(ctx.on.action('refresh-certs', { 'expires-in': '90d' }), state);
    expect(machine.refreshedCerts).toEqual([{ expiresIn: '90d', extraSans: ['a.example.com', '10.0.0.9'] }]);
    expect(ctx.actionResults).toEqual({ result: 'Certificates have been successfully refreshed.', 'extra-sans': 'a.example.com,10.0.0.9' });
    expect(ctx.actionLogs[0]).toMatch(/^refreshing certificates \(expires in 90d/);
  });

  it('refresh-certs rejects a duration k8s would not understand', async () => {
    const { machine, ctx, state } = await bootstrappedLeader();
    await expect(ctx.run(ctx.on.action('refresh-certs', { 'expires-in': 'forever' }), state)).rejects.toThrow(/is not a duration/);
    expect(machine.refreshedCerts).toEqual([]);
  });

  it('refuses an action call that charmcraft.yaml does not allow', async () => {
    const { ctx, state } = await bootstrappedLeader();
    await expect(ctx.run(ctx.on.action('refresh-certs', {}), state)).rejects.toBeInstanceOf(InconsistentStateError);
    await expect(ctx.run(ctx.on.action('get-kubeconfig', { nonsense: 1 }), state)).rejects.toThrow(/has no parameter 'nonsense'/);
  });
});

describe('k8s charm: update-status', () => {
  it('handles the out-of-band update_status dispatch like the hook, reporting node readiness', async () => {
    const { cluster, ctx, state } = await bootstrappedLeader();
    cluster.ready = false;
    const out = await ctx.run(ctx.on.updateStatus({ outOfBand: true }), state);
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Node node-0 is not ready' });
    cluster.ready = true;
    const recovered = await ctx.run(ctx.on.updateStatus({ outOfBand: true }), out);
    expect(recovered.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });
});
