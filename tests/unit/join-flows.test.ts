// The control-plane and worker join flows on a fake Host, with a double of the cluster they join:
// their steps in order, and on a failure at a step, which steps are undone and in which order.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StepEvent } from '../../src/api/index.js';
import { validateBootstrapConfig } from '../../src/config/bootstrap.js';
import { parseJoinYaml } from '../../src/config/join.js';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { writeLocalNode } from '../../src/datastore/state.js';
import { clusterConfigFrom } from '../../src/k8sd/flows/bootstrap.js';
import { runFlow, Step } from '../../src/k8sd/flows/flow.js';
import { join, JoinClusterClient, JoinEvent, JoinParams } from '../../src/k8sd/flows/join.js';
import { controlPlaneJoinSteps } from '../../src/k8sd/flows/join-control-plane.js';
import { workerJoinSteps } from '../../src/k8sd/flows/join-worker.js';
import type { SecurityProvider } from '../../src/k8sd/flows/node-steps.js';
import type { ControlPlaneJoinReply, JoinRequestBody, WorkerJoinReply } from '../../src/k8sd/membership/join-server.js';
import { JoinRole } from '../../src/k8sd/membership/token.js';
import { Layout } from '../../src/layout.js';
import { createLogger } from '../../src/log.js';
import { ensureCas, generateServiceAccountKey } from '../../src/pki/signer.js';
import { FakeHost, FakeServiceManager } from './doubles.js';

const crypto = new NodeCryptoBackend();
const noSecurity: SecurityProvider = { files: async () => [], apiserverArgs: () => ({}), beforeApiserver: async () => undefined, stop: async () => undefined };

function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f !== 'test.log').sort();
}

/** The cluster side of a join: answers register with `reply` (or throws `refuse`), records every call. */
class FakeCluster implements JoinClusterClient {
  readonly calls: string[] = [];
  constructor(private readonly reply: () => Promise<unknown>) {}
  async register<T>(body: JoinRequestBody): Promise<T> {
    this.calls.push(`register ${body.role} ${body.node.name}`);
    return (await this.reply()) as T;
  }
  async promote(memberId: string): Promise<void> {
    this.calls.push(`promote ${memberId}`);
  }
  async abort(memberId?: string): Promise<void> {
    this.calls.push(`abort ${memberId ?? '-'}`);
  }
}

async function controlPlaneReply(): Promise<ControlPlaneJoinReply> {
  const config = clusterConfigFrom(validateBootstrapConfig({}));
  const cas = await ensureCas(crypto, config.keyType, {});
  return {
    role: 'control-plane',
    joinId: 'lease-1',
    memberId: 'm1',
    config,
    pki: { cas, serviceAccountKey: await generateServiceAccountKey(crypto, config.keyType) },
    etcd: { initialCluster: 'node-1=https://10.0.0.5:2380,node-2=https://10.0.0.6:2380', peerUrl: 'https://10.0.0.6:2380' },
    members: [],
    extras: {},
  };
}

function workerReply(securePort = 6443): WorkerJoinReply {
  return {
    role: 'worker',
    certificates: { 'kubelet.conf': 'KUBELET', 'proxy.conf': 'PROXY', 'flannel.conf': 'FLANNEL' },
    caCert: 'CA',
    clientCaCert: 'CLIENT-CA',
    config: { podCidr: '10.1.0.0/16', serviceCidr: '10.152.183.0/24', clusterDomain: 'cluster.local', securePort, failCgroupV1: false, keyType: 'ecdsa-p256', leafLifetimeMs: 86_400_000 },
    apiservers: ['10.0.0.5:6443'],
    members: [],
  };
}

const line = (e: JoinEvent): string => (e.type === 'info' ? 'info' : `${e.type} ${e.step}`);

describe('the join flows on a fake host', () => {
  let root: string;
  let host: FakeHost;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'k8s-join-flow-'));
    host = new FakeHost(new Layout({ K8S_ROOT: root }), { hostname: 'node-2', address: '10.0.0.6' });
    // A joining node's k8sd has its state dir already: its cluster identity lives there.
    mkdirSync(host.layout.k8sdStateDir, { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const run = async (role: JoinRole, cluster: FakeCluster, events: JoinEvent[], security = noSecurity): Promise<Error> => {
    const p: JoinParams = {
      token: { name: 'node-2', role, bound: true, secret: 's3cret', endpoints: [{ address: '10.0.0.5:6400', fingerprint: 'ab' }], expiresAt: new Date(Date.now() + 60_000) },
      name: 'node-2',
      address: '10.0.0.6',
      config: parseJoinYaml('', role),
      timeoutMs: 10_000,
    };
    const deps = { host, log: createLogger('test', path.join(root, 'test.log')), crypto, identity: { cert: 'CERT', key: '', fingerprint: 'cd' }, security, fipsEnabled: false, remote: cluster };
    const result = await join(deps, p, (e) => events.push(e)).catch((err: Error) => err);
    if (!(result instanceof Error)) throw new Error('the join was expected to fail on the fake host');
    return result;
  };

  it('names the steps of each join in order, built from the same steps as bootstrap', () => {
    expect(controlPlaneJoinSteps.map((s) => s.name)).toEqual(['preflight', 'register', 'pki', 'write-config', 'start-datastore', 'promote', 'start-control-plane', 'start-node', 'mark-joined']);
    expect(workerJoinSteps.map((s) => s.name)).toEqual(['preflight', 'keys', 'register', 'write-config', 'start-services', 'mark-joined']);
  });

  for (const role of ['control-plane', 'worker'] as const) {
    it(`${role}: refuses a node that is already a member at preflight: the cluster is never contacted, nothing changes`, async () => {
      writeLocalNode(host.layout, { name: 'node-2', address: '10.0.0.6', role: 'worker', clusterPort: 6400, etcdEndpoints: [] });
      const before = tree(root);
      const cluster = new FakeCluster(controlPlaneReply);
      const events: JoinEvent[] = [];
      const err = await run(role, cluster, events);
      expect(err.message).toMatch(new RegExp(`^join \\(${role}\\) failed at step "preflight": this node is already part of a cluster \\(node "node-2", worker\\)`));
      expect(events.map(line)).toEqual(['step preflight']);
      expect(cluster.calls).toEqual([]);
      expect(host.services.calls).toEqual([]);
      expect(tree(root)).toEqual(before);
    });
  }

  it('control-plane: a refused registration is undone by an abort (a no-op for the real client, which never reached a node)', async () => {
    const cluster = new FakeCluster(async () => {
      throw new Error('join token "node-2" is not valid in this cluster');
    });
    const events: JoinEvent[] = [];
    const err = await run('control-plane', cluster, events);
    expect(err.message).toBe('join (control-plane) failed at step "register": join token "node-2" is not valid in this cluster');
    expect(events.map(line)).toEqual(['step preflight', 'step register', 'rollback register']);
    expect(cluster.calls).toEqual(['register control-plane node-2', 'abort -']);
  });

  it('control-plane: a control-plane port taken once the cluster config is known fails pki, and the cluster takes the member out', async () => {
    host = new FakeHost(host.layout, { portsInUse: ['10.0.0.6:2379'] });
    const cluster = new FakeCluster(controlPlaneReply);
    const events: JoinEvent[] = [];
    const err = await run('control-plane', cluster, events);
    expect(err.message).toMatch(/step "pki": port 10\.0\.0\.6:2379 \(etcd client\) is already in use; stop whatever listens there first$/);
    expect(events.map(line)).toEqual(['step preflight', 'step register', 'step pki', 'rollback pki', 'rollback register']);
    expect(cluster.calls).toEqual(['register control-plane node-2', 'abort m1']);
    expect(host.services.calls).toEqual([]);
  });

  it('control-plane: files that cannot be rendered fail write-config; pki and register are undone after it', async () => {
    const cluster = new FakeCluster(controlPlaneReply);
    const events: JoinEvent[] = [];
    const before = tree(root);
    const broken: SecurityProvider = { ...noSecurity, files: async () => Promise.reject(new Error('audit policy unreadable')) };
    const err = await run('control-plane', cluster, events, broken);
    expect(err.message).toBe('join (control-plane) failed at step "write-config": audit policy unreadable');
    expect(events.map(line)).toEqual(['step preflight', 'step register', 'step pki', 'step write-config', 'rollback write-config', 'rollback pki', 'rollback register']);
    expect(cluster.calls).toEqual(['register control-plane node-2', 'abort m1']);
    expect(tree(root)).toEqual(before);
  });

  it('control-plane: an etcd that does not start: every step done is undone in reverse, the member is aborted, nothing is left on the host', async () => {
    const before = tree(root);
    host = new FakeHost(host.layout, { services: new FakeServiceManager(new Set(['etcd'])) });
    const cluster = new FakeCluster(controlPlaneReply);
    const events: JoinEvent[] = [];
    const err = await run('control-plane', cluster, events);
    expect(err.message).toBe('join (control-plane) failed at step "start-datastore": etcd: exited at once (test double)');
    expect(events.map(line)).toEqual([
      'step preflight',
      'step register',
      'step pki',
      'step write-config',
      'step start-datastore',
      'rollback start-datastore',
      'rollback write-config',
      'rollback pki',
      'rollback register',
    ]);
    expect(host.services.calls).toEqual(['start etcd', 'stop etcd']);
    expect(cluster.calls).toEqual(['register control-plane node-2', 'abort m1']);
    expect(tree(root)).toEqual(before);
  });

  it('worker: a refused registration undoes nothing on the cluster and says nothing', async () => {
    const cluster = new FakeCluster(async () => {
      throw new Error('join token "node-2" expired');
    });
    const events: JoinEvent[] = [];
    const err = await run('worker', cluster, events);
    expect(err.message).toBe('join (worker) failed at step "register": join token "node-2" expired');
    expect(events.map(line)).toEqual(['step preflight', 'step keys', 'step register', 'rollback register']);
    expect(cluster.calls).toEqual(['register worker node-2']);
  });

  it('worker: a failure after certificates were issued removes the files written and tells the operator to remove the node', async () => {
    host = new FakeHost(host.layout, { portsInUse: ['127.0.0.1:7443'] });
    const before = tree(root);
    const cluster = new FakeCluster(async () => workerReply(7443));
    const events: JoinEvent[] = [];
    const err = await run('worker', cluster, events);
    expect(err.message).toMatch(/step "write-config": port 127\.0\.0\.1:7443 \(k8s-apiserver-proxy\) is already in use/);
    expect(events.map(line)).toEqual(['step preflight', 'step keys', 'step register', 'step write-config', 'rollback write-config', 'info', 'rollback register']);
    const info = events.find((e) => e.type === 'info');
    expect(info && 'message' in info ? info.message : '').toMatch(/run "k8s remove-node node-2", then join again with a new token/);
    expect(cluster.calls).toEqual(['register worker node-2']);
    expect(tree(root)).toEqual(before);
  });
});

describe('undo order of each join flow, failing at each step', () => {
  // The steps' own work replaced by a recorder: what is undone is every step started, the failing
  // one first, then back to the first — each step that has an undo.
  const recorded = <C>(steps: Step<C>[], failAt: string, log: string[]): Step<C>[] =>
    steps.map((s) => ({
      name: s.name,
      title: s.title,
      async run() {
        log.push(`run ${s.name}`);
        if (s.name === failAt) throw new Error('injected');
      },
      ...(s.rollback ? { rollback: async () => void log.push(`undo ${s.name}`) } : {}),
    }));

  const undoable = { cp: ['register', 'pki', 'write-config', 'start-datastore', 'promote', 'start-control-plane', 'start-node', 'mark-joined'], worker: ['register', 'write-config', 'start-services', 'mark-joined'] };

  for (const [flow, steps] of [['cp', controlPlaneJoinSteps], ['worker', workerJoinSteps]] as const) {
    for (const [i, failing] of steps.entries()) {
      it(`${flow === 'cp' ? 'control-plane' : 'worker'} join failing at ${failing.name}`, async () => {
        const log: string[] = [];
        const events: StepEvent[] = [];
        await expect(runFlow('join', recorded<unknown>(steps as Step<unknown>[], failing.name, log), {}, (e) => events.push(e))).rejects.toThrow(`failed at step "${failing.name}"`);
        const started = steps.slice(0, i + 1).map((s) => s.name);
        const undone = [...started].reverse().filter((n) => undoable[flow].includes(n));
        expect(log).toEqual([...started.map((n) => `run ${n}`), ...undone.map((n) => `undo ${n}`)]);
      });
    }
  }
});
