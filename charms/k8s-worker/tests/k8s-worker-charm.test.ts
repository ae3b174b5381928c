import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Context, findRelation, type RelationState, type State } from '../../runtime/src/testing/index.js';
import { DEFAULT_MODEL } from '../../runtime/src/testing/state.js';
import { FakeCluster, type FakeMachine } from '../../k8s-common/tests/fake-cluster.js';
import { INSTALLED_SNAP, consumerView, k8sMeta, onlySecret, relationById, updateRelation, workerMeta } from '../../k8s-common/tests/scenario-helpers.js';
import { clusterNameFor } from '../../k8s-common/src/protocol.js';
import { k8sCharm } from '../../k8s/src/charm.js';
import { k8sWorkerCharm } from '../src/charm.js';

const CLUSTER_NAME = clusterNameFor('k8s', DEFAULT_MODEL.uuid);
const K8S_CLUSTER_ID = 7;
const WORKER_CLUSTER_ID = 3;

/**
 * One k8s leader (node-0) and one k8s-worker unit (worker-0), related k8s:k8s-cluster ↔ k8s-worker:cluster.
 * Each side keeps its own State; `deliver` carries what one side wrote to the other, as Juju would.
 */
class Deployment {
  readonly cluster = new FakeCluster();
  readonly leaderMachine: FakeMachine;
  readonly workerMachine: FakeMachine;
  readonly leader: Context;
  readonly worker: Context;
  leaderState!: State;
  workerState!: State;

  constructor(workerK8sdStateDir?: string, leaderPkiDir?: string) {
    this.leaderMachine = this.cluster.machine('node-0');
    this.leaderMachine.snap = { ...INSTALLED_SNAP };
    if (leaderPkiDir) this.leaderMachine.pkiDir = leaderPkiDir;
    this.workerMachine = this.cluster.machine('worker-0');
    this.workerMachine.snap = { ...INSTALLED_SNAP };
    if (workerK8sdStateDir) this.workerMachine.k8sdStateDir = workerK8sdStateDir;
    this.leader = new Context(k8sCharm(this.leaderMachine.deps()), k8sMeta);
    this.worker = new Context(k8sWorkerCharm(this.workerMachine.deps()), workerMeta);
  }

  async start(workerConfig: State['config'] = {}): Promise<void> {
    this.leaderState = await this.leader.run(this.leader.on.leaderElected(), { leader: true, relations: [{ id: 1, endpoint: 'cluster' }] });
    const workerRelation: RelationState = { id: WORKER_CLUSTER_ID, endpoint: 'cluster', remoteApp: 'k8s', remoteAppData: {}, remoteUnitsData: { 0: {} } };
    this.workerState = await this.worker.run(this.worker.on.relationJoined(workerRelation), { config: workerConfig, relations: [workerRelation] });
    const leaderRelation: RelationState = {
      id: K8S_CLUSTER_ID,
      endpoint: 'k8s-cluster',
      remoteApp: 'k8s-worker',
      remoteAppData: {},
      remoteUnitsData: { 0: this.workerUnitBag() },
    };
    this.leaderState = { ...this.leaderState, relations: [...this.leaderState.relations, leaderRelation] };
  }

  workerUnitBag(): Record<string, string> {
    return { ...(findRelation(this.workerState, 'cluster')?.localUnitData ?? {}) };
  }

  /** The leader handles relation-changed from worker-0, seeing its latest unit bag. */
  async leaderSeesWorker(): Promise<State> {
    const state = updateRelation(this.leaderState, K8S_CLUSTER_ID, { remoteUnitsData: { 0: this.workerUnitBag() } });
    this.leaderState = await this.leader.run(this.leader.on.relationChanged(relationById(state, K8S_CLUSTER_ID), { remoteUnit: 0 }), state);
    return this.leaderState;
  }

  /** The worker sees the leader's app bag and the token secret as granted to it. */
  workerView(options: { trackedRevision?: number } = {}): State {
    const leaderBag = relationById(this.leaderState, K8S_CLUSTER_ID).localAppData ?? {};
    const secrets = this.leaderState.secrets.map((secret) => consumerView(secret, 'k8s-worker/0', options.trackedRevision));
    return { ...updateRelation(this.workerState, WORKER_CLUSTER_ID, { remoteAppData: leaderBag }), secrets };
  }

  async workerSeesLeader(state: State = this.workerView()): Promise<State> {
    this.workerState = await this.worker.run(this.worker.on.relationChanged(relationById(state, WORKER_CLUSTER_ID), { remoteUnit: 0 }), state);
    return this.workerState;
  }
}

describe('k8s-worker charm', () => {
  it('is Blocked without the cluster integration', async () => {
    const cluster = new FakeCluster();
    const machine = cluster.machine('worker-0');
    const ctx = new Context(k8sWorkerCharm(machine.deps()), workerMeta);
    const out = await ctx.run(ctx.on.install(), { config: { channel: '1.36/stable' } });
    expect(cluster.commands.slice(0, 2)).toEqual(['worker-0: snap install k8s --classic --channel 1.36/stable', 'worker-0: snap refresh --hold k8s']);
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'Missing cluster integration' });
  });

  it('joins as a worker through a token the k8s leader puts into a Juju secret', async () => {
    const d = new Deployment();
    await d.start({ 'kubelet-extra-args': 'max-pods=50', 'node-labels': 'pool=gpu' });
    expect(d.workerState.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for cluster token' });
    expect(d.workerUnitBag()).toEqual({ 'node-name': 'worker-0', 'node-address': '192.0.2.0' });

    // The leader mints a worker token, stores it in a secret granted to k8s-worker/0 only.
    const issued = await d.leaderSeesWorker();
    expect(d.cluster.commands).toContain('node-0: k8s get-join-token worker-0 --worker --address 192.0.2.0');
    const secret = onlySecret(issued);
    expect(secret).toMatchObject({ owner: 'app', revisions: { 1: { token: 'worker-token-worker-0-1', attempt: '1' } }, grants: { 7: ['k8s-worker/0'] } });
    expect(relationById(issued, K8S_CLUSTER_ID).localAppData).toEqual({
      'cluster-name': CLUSTER_NAME,
      'join-secret.k8s-worker/0': secret.id,
      'node.k8s-worker/0': 'worker-0',
    });

    // The worker reads the secret and joins.
    const joined = await d.workerSeesLeader();
    expect(d.cluster.members.get('worker-0')).toEqual({ role: 'worker', address: '192.0.2.0' });
    expect(d.workerMachine.joinDocument).toBe("extra-node-kubelet-args:\n  '--max-pods': '50'\n");
    expect(d.cluster.commands).toContain('worker-0: k8s join-cluster <token> --name worker-0 --address 192.0.2.0 --file -');
    expect(d.workerUnitBag()).toEqual({ 'node-name': 'worker-0', 'node-address': '192.0.2.0', joined: CLUSTER_NAME });
    expect(joined.secrets[0]?.trackedRevision).toBe(1);
    expect(joined.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    expect(d.cluster.labels.get('worker-0')).toEqual({ pool: 'gpu', 'juju-application': 'k8s-worker', 'juju-charm': 'k8s-worker' });

    // The leader sees `joined`: the secret is removed, the node stays on record.
    const cleaned = await d.leaderSeesWorker();
    expect(cleaned.secrets).toEqual([]);
    expect(relationById(cleaned, K8S_CLUSTER_ID).localAppData).toEqual({ 'cluster-name': CLUSTER_NAME, 'node.k8s-worker/0': 'worker-0' });
    expect(d.cluster.tokens.size).toBe(0);
  });

  it('cannot read the token until the secret is granted to it', async () => {
    const d = new Deployment();
    await d.start();
    await d.leaderSeesWorker();
    const view = d.workerView();
    const ungranted = { ...view, secrets: view.secrets.map(({ grantedTo: _granted, ...secret }) => secret) };
    const out = await d.workerSeesLeader(ungranted);
    expect(out.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for cluster token' });
    expect(d.worker.jujuLog.some((log) => log.level === 'WARNING' && log.message.includes('has not been granted to k8s-worker/0'))).toBe(true);
    expect(d.cluster.commands.some((line) => line.includes('join-cluster'))).toBe(false);
  });

  it('reports a failed join, gets a re-issued token and joins with it', async () => {
    const d = new Deployment();
    await d.start();
    await d.leaderSeesWorker();
    d.cluster.failJoins = 1;

    const failed = await d.workerSeesLeader();
    expect(failed.unitStatus).toEqual({ status: 'waiting', message: 'Join attempt 1 failed; waiting for a new token' });
    const report = JSON.parse(d.workerUnitBag()['join-failure'] ?? '{}') as { attempt: number; error: string };
    expect(report.attempt).toBe(1);
    expect(report.error).toContain('context deadline exceeded');
    expect(report.error).not.toContain('worker-token-worker-0-1');
    expect(report.error).toContain('<token>');

    // Retrying with the same token is pointless: the worker waits.
    const joinsBefore = d.cluster.commands.filter((line) => line.includes('join-cluster')).length;
    await d.workerSeesLeader(d.workerView({ trackedRevision: 1 }));
    expect(d.cluster.commands.filter((line) => line.includes('join-cluster')).length).toBe(joinsBefore);

    // The leader revokes the old token and sets a new revision with attempt 2.
    const reissued = await d.leaderSeesWorker();
    expect(d.cluster.commands).toEqual(expect.arrayContaining(['node-0: k8s revoke-join-token worker-0']));
    const secret = onlySecret(reissued);
    expect(secret.revisions).toEqual({
      1: { token: 'worker-token-worker-0-1', attempt: '1' },
      2: { token: 'worker-token-worker-0-2', attempt: '2' },
    });

    // The same failure report seen again (the worker has not retried yet) does not re-issue again.
    const leaderCommands = d.cluster.commands.length;
    await d.leaderSeesWorker();
    expect(d.cluster.commands.slice(leaderCommands).some((line) => line.includes('get-join-token'))).toBe(false);
    expect(onlySecret(d.leaderState).revisions[3]).toBeUndefined();

    // secret-changed on the worker: it refreshes to revision 2 and joins.
    const view = d.workerView({ trackedRevision: 1 });
    const changed = await d.worker.run(d.worker.on.secretChanged(view.secrets[0] ?? secret), view);
    d.workerState = changed;
    expect(changed.secrets[0]?.trackedRevision).toBe(2);
    expect(d.cluster.members.get('worker-0')?.role).toBe('worker');
    expect(d.workerUnitBag()).toEqual({ 'node-name': 'worker-0', 'node-address': '192.0.2.0', joined: CLUSTER_NAME });
    expect(changed.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });

  it('on relation-departed the leader removes the worker node and the worker removes its snap', async () => {
    const d = new Deployment();
    await d.start();
    await d.leaderSeesWorker();
    await d.workerSeesLeader();
    await d.leaderSeesWorker();

    const leaderOut = await d.leader.run(
      d.leader.on.relationDeparted(relationById(d.leaderState, K8S_CLUSTER_ID), { remoteUnit: 0 }),
      d.leaderState,
    );
    expect(d.cluster.commands).toContain('node-0: k8s remove-node worker-0');
    expect(d.cluster.members.has('worker-0')).toBe(false);
    expect(relationById(leaderOut, K8S_CLUSTER_ID).localAppData).toEqual({ 'cluster-name': CLUSTER_NAME });

    const relation = relationById(d.workerState, WORKER_CLUSTER_ID);
    const workerOut = await d.worker.run(d.worker.on.relationDeparted(relation, { remoteUnit: 0, departingUnit: 'k8s-worker/0' }), d.workerState);
    expect(d.cluster.commands.filter((line) => line.startsWith('worker-0')).slice(-2)).toEqual([
      'worker-0: k8s status --output-format json',
      'worker-0: snap remove k8s --purge',
    ]);
    expect(workerOut.storedState.dying).toBe('true');
    expect(workerOut.unitStatus).toEqual({ status: 'maintenance', message: 'Removed from the cluster' });
  });

  it('leaves the cluster when the cluster relation is broken', async () => {
    const d = new Deployment();
    await d.start();
    await d.leaderSeesWorker();
    await d.workerSeesLeader();
    d.cluster.members.delete('worker-0');
    const relation = relationById(d.workerState, WORKER_CLUSTER_ID);
    const out = await d.worker.run(d.worker.on.relationBroken(relation), d.workerState);
    expect(d.workerMachine.snap).toBeUndefined();
    expect(out.unitStatus).toEqual({ status: 'maintenance', message: 'Removed from the cluster' });
  });

  it('blocks when it has joined a different cluster than the one it is related to', async () => {
    const d = new Deployment();
    await d.start();
    const relation = relationById(d.workerState, WORKER_CLUSTER_ID);
    const state = updateRelation(d.workerState, WORKER_CLUSTER_ID, {
      localUnitData: { 'node-name': 'worker-0', joined: 'k8s-old' },
      remoteAppData: { 'cluster-name': CLUSTER_NAME },
    });
    const out = await d.worker.run(d.worker.on.relationChanged(relationById(state, relation.id), { remoteUnit: 0 }), state);
    expect(out.unitStatus).toEqual({ status: 'blocked', message: 'Cannot rejoin new cluster - remove unit' });
  });

  it('handles the out-of-band update_status dispatch', async () => {
    const d = new Deployment();
    await d.start();
    await d.leaderSeesWorker();
    await d.workerSeesLeader();
    const out = await d.worker.run(d.worker.on.updateStatus({ outOfBand: true }), d.workerState);
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
  });
});

describe('k8s-worker charm: node options', () => {
  it('joins with bootstrap-node-taints on the kubelet and the accepted insecure flag', async () => {
    const d = new Deployment();
    await d.start({ 'bootstrap-node-taints': 'gpu=true:NoSchedule', 'kubelet-extra-args': 'read-only-port=10255', 'accept-insecure-node-args': 'kubelet:read-only-port' });
    await d.leaderSeesWorker();
    await d.workerSeesLeader();
    expect(d.cluster.members.get('worker-0')?.role).toBe('worker');
    expect(d.workerMachine.joinDocument).toBe(
      "extra-node-kubelet-args:\n  '--read-only-port': '10255'\n  '--register-with-taints': gpu=true:NoSchedule\naccept-insecure-node-args:\n  kubelet:\n    - '--read-only-port'\n",
    );
  });

  it.each([
    ['bootstrap-node-taints', 'gpu=true', "bootstrap-node-taints: 'gpu=true' is not a taint such as key=value:NoSchedule (effects: NoSchedule, PreferNoSchedule, NoExecute)"],
    ['accept-insecure-node-args', 'kube-apiserver:profiling', "accept-insecure-node-args: 'kube-apiserver:profiling' is not <service>:<flag> with a service of kube-proxy, kubelet"],
  ])('%s=%s blocks the worker, naming the option, before it joins', async (option, value, message) => {
    const d = new Deployment();
    await d.start({ [option]: value });
    expect(d.workerState.unitStatus).toEqual({ status: 'blocked', message });
    expect(d.workerUnitBag()).toEqual({});
  });

  it('cos-agent: asks the leader for the scrape token, then publishes k8sd and kubelet jobs with it (no control-plane jobs)', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'k8sd-state-'));
    onTestFinished(() => rmSync(stateDir, { recursive: true, force: true }));
    writeFileSync(path.join(stateDir, 'metrics-token'), 'beef\n', { mode: 0o600 });
    writeFileSync(path.join(stateDir, 'cluster.crt'), 'K8SD-CA-PEM');
    const kubeletCa = '-----BEGIN CERTIFICATE-----\nKUBELET-CA\n-----END CERTIFICATE-----\n';
    writeFileSync(path.join(stateDir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n');
    writeFileSync(path.join(stateDir, 'kubelet-ca.crt'), kubeletCa);
    // The leader's PKI directory: here the same temporary directory.
    const d = new Deployment(stateDir, stateDir);
    const cos: RelationState = { id: 9, endpoint: 'cos-agent', remoteApp: 'grafana-agent' };
    await d.start();
    await d.leaderSeesWorker();
    await d.workerSeesLeader();
    await d.leaderSeesWorker();
    // Relating grafana-agent: the worker publishes k8sd's job and asks for the Kubernetes token.
    d.workerState = { ...d.workerState, relations: [...d.workerState.relations, cos] };
    const asked = await d.worker.run(d.worker.on.relationJoined(relationById(d.workerState, 9), { remoteUnit: 0 }), d.workerState);
    d.workerState = asked;
    expect(asked.unitStatus).toEqual({ status: 'waiting', message: 'Waiting for the Kubernetes scrape token from the k8s leader' });
    expect(d.workerUnitBag()['cos-scrape']).toBe('wanted');
    const early = JSON.parse(findRelation(asked, 'cos-agent')?.localUnitData?.config ?? '{}') as { metrics_scrape_jobs: Array<{ job_name: string }> };
    expect(early.metrics_scrape_jobs.map((job) => job.job_name)).toEqual(['k8sd-worker-0']);

    // The leader mints the token into a secret granted to the k8s-cluster relation.
    const leaderOut = await d.leaderSeesWorker();
    const secret = onlySecret(leaderOut);
    expect(secret.grants).toEqual({ [K8S_CLUSTER_ID]: ['k8s-worker'] });
    expect(relationById(leaderOut, K8S_CLUSTER_ID).localAppData).toMatchObject({ 'cos-scrape-secret-id': secret.id, 'cos-kubelet-ca': kubeletCa });

    const out = await d.workerSeesLeader();
    expect(out.unitStatus).toEqual({ status: 'active', message: 'Ready' });
    const config = JSON.parse(findRelation(out, 'cos-agent')?.localUnitData?.config ?? '{}') as {
      metrics_scrape_jobs: Array<{ job_name: string; metrics_path: string; authorization?: { credentials: string }; tls_config?: { ca: string } }>;
    };
    expect(config.metrics_scrape_jobs.map((job) => [job.job_name, job.metrics_path, job.authorization?.credentials, job.tls_config?.ca])).toEqual([
      ['k8sd-worker-0', '/metrics', 'beef', 'K8SD-CA-PEM'],
      ['kubelet-worker-0', '/metrics', 'sa-token-1', kubeletCa],
      ['kubelet-cadvisor-worker-0', '/metrics/cadvisor', 'sa-token-1', kubeletCa],
    ]);
  });
});
