// The cluster's side of a join with a recording store and etcd: on a failure at each step, what
// was done is undone in reverse (token put back, record deleted, learner removed, lock released),
// and the step's own error reaches the joiner.
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateBootstrapConfig } from '../../src/config/bootstrap.js';
import type { EtcdMember } from '../../src/datastore/etcd.js';
import type { PkiRecord } from '../../src/datastore/state.js';
import { admitControlPlaneSteps, admitJoin, admitWorkerSteps, AdmitCtx, AdmitEtcd, AdmitStore, JoinAdmission, VerifiedToken } from '../../src/k8sd/flows/admit-join.js';
import { clusterConfigFrom } from '../../src/k8sd/flows/bootstrap.js';
import { ApiError } from '../../src/k8sd/http.js';
import type { JoinRequestBody } from '../../src/k8sd/membership/join-server.js';
import type { MemberRecord } from '../../src/k8sd/membership/store.js';
import { createLogger } from '../../src/log.js';

const TOKEN: VerifiedToken = {
  record: { name: 'node-2', role: 'control-plane', bound: true, secretHash: 'h', expiresAt: new Date(Date.now() + 60_000).toISOString() } as VerifiedToken['record'],
  raw: '{"name":"node-2"}',
};

type Failing = 'lock' | 'verify' | 'consume' | 'put' | 'create' | 'learner' | 'record-join' | 'peers' | 'sign';

/** Records every change; `failing` names the one operation that throws (or, for consume/create, answers "no"). */
function doubles(failing?: Failing): { log: string[]; store: AdmitStore; etcd: AdmitEtcd; admission: JoinAdmission } {
  const log: string[] = [];
  const fail = (what: Failing): void => {
    if (failing === what) throw new ApiError(409, `${what} failed (test double)`);
  };
  const members: EtcdMember[] = [{ id: 'm0', name: 'node-1', peerURLs: ['https://10.0.0.5:2380'], clientURLs: ['https://10.0.0.5:2379'], isLearner: false }];
  const store: AdmitStore = {
    consumeToken: async (name) => (log.push(`consume ${name}`), failing !== 'consume'),
    restoreToken: async (raw) => void log.push(`restore ${raw}`),
    member: async (): Promise<MemberRecord | undefined> => undefined,
    putMember: async (m) => (fail('put'), void log.push(`put ${m.name}`)),
    createMember: async (m) => (log.push(`create ${m.name}`), failing !== 'create'),
    deleteMember: async (name) => void log.push(`delete ${name}`),
    unlock: async (lease) => void log.push(`unlock ${lease}`),
    recordJoin: async (j) => (fail('record-join'), void log.push(`record-join ${j.memberId}`)),
  };
  const etcd: AdmitEtcd = {
    members: async () => members,
    addLearner: async (peerUrl) => {
      fail('learner');
      log.push(`add-learner ${peerUrl}`);
      const member = { id: 'm1', name: '', peerURLs: [peerUrl], clientURLs: [], isLearner: true };
      return { member, members: [...members, member] };
    },
    removeMember: async (id) => void log.push(`remove-member ${id}`),
  };
  const admission: JoinAdmission = {
    lock: async () => (fail('lock'), log.push('lock'), 'lease-1'),
    refuseDuringCaRotation: async () => undefined,
    verifyToken: async () => (fail('verify'), TOKEN),
    admit: async () => undefined,
    controlPlanePeers: async () => (fail('peers'), []),
    checkCsrs: async () => ({ 'kubelet.conf': 'CSR' }),
    signCsrs: async () => (fail('sign'), { 'kubelet.conf': 'C', 'proxy.conf': 'C', 'flannel.conf': 'C' }),
    workerConfig: () => ({ podCidr: '', serviceCidr: '', clusterDomain: 'cluster.local', securePort: 6443, failCgroupV1: false, keyType: 'ecdsa-p256', leafLifetimeMs: 1 }),
    apiserverEndpoints: () => ['10.0.0.5:6443'],
  };
  return { log, store, etcd, admission };
}

const pki = { cas: { ca: { cert: 'CA' }, 'client-ca': { cert: 'CLIENT-CA' } } } as unknown as PkiRecord;

async function admit(role: 'control-plane' | 'worker', failing?: Failing): Promise<{ log: string[]; result: unknown }> {
  const { log, store, etcd, admission } = doubles(failing);
  const body: JoinRequestBody = { token: { name: 'node-2', secret: 's' }, role, node: { name: 'node-2', address: '10.0.0.6', clusterCert: 'CERT' } };
  const ctx: AdmitCtx = { store, etcd, admission, body, config: clusterConfigFrom(validateBootstrapConfig({})), pki, log: createLogger('test', path.join(os.tmpdir(), 'k8s-admit-test.log')), ...(role === 'worker' ? { token: TOKEN } : {}) };
  const result = await admitJoin(role === 'control-plane' ? admitControlPlaneSteps : admitWorkerSteps, ctx).catch((err: Error) => err);
  return { log, result };
}

describe('the cluster side of a control-plane join', () => {
  it('runs lock, admit, consume-token, register, add-learner, reply, and keeps the lock for the promotion', async () => {
    expect(admitControlPlaneSteps.map((s) => s.name)).toEqual(['lock', 'admit', 'consume-token', 'register', 'add-learner', 'reply']);
    const { log, result } = await admit('control-plane');
    expect(log).toEqual(['lock', 'consume node-2', 'put node-2', 'add-learner https://10.0.0.6:2380', 'record-join m1']);
    expect(result).toMatchObject({ role: 'control-plane', memberId: 'm1', joinId: 'lease-1', etcd: { initialCluster: 'node-1=https://10.0.0.5:2380,node-2=https://10.0.0.6:2380' } });
  });

  const undo: Array<[Failing, string[]]> = [
    ['lock', []],
    ['verify', ['lock', 'unlock lease-1']],
    ['consume', ['lock', 'consume node-2', 'unlock lease-1']],
    ['put', ['lock', 'consume node-2', 'restore {"name":"node-2"}', 'unlock lease-1']],
    ['learner', ['lock', 'consume node-2', 'put node-2', 'delete node-2', 'restore {"name":"node-2"}', 'unlock lease-1']],
    ['record-join', ['lock', 'consume node-2', 'put node-2', 'add-learner https://10.0.0.6:2380', 'remove-member m1', 'delete node-2', 'restore {"name":"node-2"}', 'unlock lease-1']],
    ['peers', ['lock', 'consume node-2', 'put node-2', 'add-learner https://10.0.0.6:2380', 'record-join m1', 'remove-member m1', 'delete node-2', 'restore {"name":"node-2"}', 'unlock lease-1']],
  ];
  for (const [failing, expected] of undo) {
    it(`failing at "${failing}": undone in reverse, the joiner gets the step's own error`, async () => {
      const { log, result } = await admit('control-plane', failing);
      expect(result).toBeInstanceOf(ApiError);
      expect(log).toEqual(expected);
    });
  }
});

describe('the cluster side of a worker join', () => {
  it('runs check-csrs, consume-token, register, admit, sign', async () => {
    expect(admitWorkerSteps.map((s) => s.name)).toEqual(['check-csrs', 'consume-token', 'register', 'admit', 'sign']);
    const { log, result } = await admit('worker');
    expect(log).toEqual(['consume node-2', 'create node-2']);
    expect(result).toMatchObject({ role: 'worker', apiservers: ['10.0.0.5:6443'], certificates: { 'kubelet.conf': 'C' } });
  });

  const undo: Array<[Failing, string[], number]> = [
    // A token another join spent is not put back; a record of another node is not deleted.
    ['consume', ['consume node-2'], 401],
    ['create', ['consume node-2', 'create node-2', 'restore {"name":"node-2"}'], 409],
    ['sign', ['consume node-2', 'create node-2', 'delete node-2', 'restore {"name":"node-2"}'], 409],
  ];
  for (const [failing, expected, status] of undo) {
    it(`failing at "${failing}": answers ${status} and undoes only what this join did`, async () => {
      const { log, result } = await admit('worker', failing);
      expect((result as ApiError).status).toBe(status);
      expect(log).toEqual(expected);
    });
  }
});
