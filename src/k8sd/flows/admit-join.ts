// The cluster's side of a join, on the control-plane node that a joining node contacts: the
// steps from "token valid" to the reply, each undone when a later one fails. A token is spent for
// good once a reply carries certificates or CA material; before that, a failure puts it back.
// The membership checks (token, name, address, CA rotation, the join lock) are membership's: the
// flow receives them as JoinAdmission, and the records through the membership store.
import { EtcdClient } from '../../datastore/etcd.js';
import { ClusterConfig, PkiRecord } from '../../datastore/state.js';
import { Logger } from '../../log.js';
import { trustBundle } from '../../pki/signer.js';
import { etcdPeerUrl } from '../controlplane.js';
import { ApiError } from '../http.js';
import { joinPayloadProviders } from '../membership/extensions.js';
import type { ControlPlaneJoinReply, JoinRequestBody, WorkerClientCert, WorkerJoinReply, WorkerClusterConfig } from '../membership/join-messages.js';
import type { PeerRecord } from '../cluster/peer.js';
import { JoinTokenRecord, MembershipStore } from '../membership/store.js';
import { FlowError, runFlow, Step } from './flow.js';

export interface VerifiedToken {
  record: JoinTokenRecord;
  /** The record exactly as read when it was verified: consuming compares against it. */
  raw: string;
}

/** What membership checks and computes for a join; each throws an ApiError that says why not. */
export interface JoinAdmission {
  /** Takes the cluster's join lock for this node (waits a while for it); returns the lease. */
  lock(): Promise<string>;
  refuseDuringCaRotation(): Promise<void>;
  verifyToken(): Promise<VerifiedToken>;
  /** The name and address the node claims; `resuming`: over its own (unfinished) record. */
  admit(t: VerifiedToken, resuming: boolean): Promise<void>;
  controlPlanePeers(): Promise<PeerRecord[]>;
  /** Checked CSRs of the worker's client certificates. */
  checkCsrs(): Promise<Partial<Record<WorkerClientCert, string>>>;
  signCsrs(csrs: Partial<Record<WorkerClientCert, string>>): Promise<Record<WorkerClientCert, string>>;
  workerConfig(): WorkerClusterConfig;
  apiserverEndpoints(peers: PeerRecord[]): string[];
}

/** What the admit flows use of the membership store and of etcd (a test gives doubles). */
export type AdmitStore = Pick<MembershipStore, 'consumeToken' | 'restoreToken' | 'member' | 'putMember' | 'createMember' | 'deleteMember' | 'unlock' | 'recordJoin'>;
export type AdmitEtcd = Pick<EtcdClient, 'members' | 'addLearner' | 'removeMember'>;

export interface AdmitCtx {
  store: AdmitStore;
  etcd: AdmitEtcd;
  log: Logger;
  body: JoinRequestBody;
  config: ClusterConfig;
  pki: PkiRecord;
  admission: JoinAdmission;
  token?: VerifiedToken;
  lease?: string;
  /** The token record this join consumed (put back on undo). */
  consumed?: string;
  /** This join wrote the node's record (deleted on undo). */
  registered?: boolean;
  memberId?: string;
  peerUrl?: string;
  members?: PeerRecord[];
  csrs?: Partial<Record<WorkerClientCert, string>>;
  reply?: ControlPlaneJoinReply | WorkerJoinReply;
}

function consumeTokenStep(message: (ctx: AdmitCtx) => string): Step<AdmitCtx> {
  return {
    name: 'consume-token',
    title: 'Spending the join token',
    async run(ctx) {
      // Consume exactly the record that was verified (a compare on its value): a token revoked and
      // issued again under the same name meanwhile is a different record, and this join fails.
      if (!(await ctx.store.consumeToken(ctx.token!.record.name, ctx.token!.raw))) throw new ApiError(401, message(ctx));
      ctx.consumed = ctx.token!.raw;
    },
    async rollback(ctx) {
      if (ctx.consumed) await ctx.store.restoreToken(ctx.consumed);
    },
  };
}

const deleteRecord: Step<AdmitCtx>['rollback'] = async (ctx) => {
  if (ctx.registered) await ctx.store.deleteMember(ctx.body.node.name);
};

export const admitControlPlaneSteps: Step<AdmitCtx>[] = [
  {
    name: 'lock',
    title: 'Taking the join lock',
    async run(ctx) {
      ctx.lease = await ctx.admission.lock();
    },
    async rollback(ctx) {
      if (ctx.lease) await ctx.store.unlock(ctx.lease);
    },
  },
  {
    name: 'admit',
    title: 'Checking the token, the name and the address',
    async run(ctx) {
      const { name, address } = ctx.body.node;
      await ctx.admission.refuseDuringCaRotation();
      // Re-checked under the lock: another joiner may have used the token meanwhile.
      ctx.token = await ctx.admission.verifyToken();
      ctx.peerUrl = etcdPeerUrl(address, ctx.config.etcdPeerPort);
      const existing = await ctx.store.member(name);
      await ctx.admission.admit(ctx.token, existing?.joining === true && existing.role === 'control-plane');
      // A stale half-join (the joiner died before promotion): clear it before starting again.
      for (const mem of (await ctx.etcd.members()).filter((x) => x.peerURLs.includes(ctx.peerUrl!) || (existing && x.name === name))) {
        if (!mem.isLearner && mem.name) throw new ApiError(409, `address ${address} is already used by datastore member "${mem.name}"; remove that node first`);
        ctx.log.warn('removing the etcd learner of an unfinished join', { node: name, member: mem.id });
        await ctx.etcd.removeMember(mem.id);
      }
    },
  },
  consumeTokenStep((ctx) => `join token "${ctx.token!.record.name}" was used by another join a moment ago; ask for a new one`),
  {
    name: 'register',
    title: 'Recording the joining node',
    async run(ctx) {
      const { name, address, clusterCert } = ctx.body.node;
      await ctx.store.putMember({ name, address, role: 'control-plane', clusterCert, joinedAt: new Date().toISOString(), joining: true });
      ctx.registered = true;
    },
    rollback: deleteRecord,
  },
  {
    name: 'add-learner',
    title: 'Adding an etcd learner',
    async run(ctx) {
      const { name, address } = ctx.body.node;
      let added;
      try {
        added = await ctx.etcd.addLearner(ctx.peerUrl!);
      } catch (err) {
        throw new ApiError(409, `the datastore refused the new member: ${(err as Error).message}`);
      }
      const memberId = added.member.id;
      ctx.memberId = memberId;
      await ctx.store.recordJoin({ name, address, memberId, lease: ctx.lease!, startedAt: new Date().toISOString() });
      const initialCluster = added.members
        .map((mem) => (mem.id === memberId ? `${name}=${ctx.peerUrl}` : mem.name ? `${mem.name}=${mem.peerURLs[0]}` : ''))
        .filter(Boolean)
        .join(',');
      ctx.reply = { role: 'control-plane', joinId: ctx.lease!, memberId, config: ctx.config, pki: ctx.pki, etcd: { initialCluster, peerUrl: ctx.peerUrl! }, members: [], extras: {} };
    },
    async rollback(ctx) {
      if (ctx.memberId) await ctx.etcd.removeMember(ctx.memberId);
    },
  },
  {
    name: 'reply',
    title: 'Gathering what the new member needs',
    async run(ctx) {
      const reply = ctx.reply as ControlPlaneJoinReply;
      for (const p of joinPayloadProviders()) reply.extras[p.key] = await p.export();
      reply.members = await ctx.admission.controlPlanePeers();
      ctx.log.info('control-plane join accepted; etcd learner added', { node: ctx.body.node.name, address: ctx.body.node.address, member: ctx.memberId });
    },
  },
];

export const admitWorkerSteps: Step<AdmitCtx>[] = [
  {
    name: 'check-csrs',
    title: 'Checking the certificate requests',
    async run(ctx) {
      ctx.csrs = await ctx.admission.checkCsrs();
    },
  },
  consumeTokenStep((ctx) => `join token "${ctx.body.token.name}" was used by another join a moment ago; ask for a new one`),
  {
    name: 'register',
    title: 'Recording the joining node',
    async run(ctx) {
      const { name, address, clusterCert } = ctx.body.node;
      if (!(await ctx.store.createMember({ name, address, role: 'worker', clusterCert, joinedAt: new Date().toISOString() }))) {
        throw new ApiError(409, `node "${name}" is already a member of this cluster; remove it first with "k8s remove-node ${name}"`);
      }
      ctx.registered = true;
    },
    rollback: deleteRecord,
  },
  {
    name: 'admit',
    title: 'Checking the name and the address',
    async run(ctx) {
      // Workers join concurrently (no join lock): checked again now that this record exists, so
      // that of two joins claiming one address at the same moment at most one goes through.
      await ctx.admission.admit(ctx.token!, true);
      await ctx.admission.refuseDuringCaRotation();
    },
  },
  {
    name: 'sign',
    title: 'Signing the client certificates',
    // The last step: once certificates exist, nothing undoes the token or the record; they stay for
    // "k8s remove-node" to find.
    async run(ctx) {
      const members = await ctx.admission.controlPlanePeers();
      const certificates = await ctx.admission.signCsrs(ctx.csrs!);
      ctx.log.info('worker join accepted', { node: ctx.body.node.name, address: ctx.body.node.address });
      ctx.reply = {
        role: 'worker',
        certificates,
        caCert: trustBundle(ctx.pki.cas.ca),
        clientCaCert: trustBundle(ctx.pki.cas['client-ca']),
        config: ctx.admission.workerConfig(),
        apiservers: ctx.admission.apiserverEndpoints(members),
        members,
      };
    },
  },
];

/** Runs the cluster's side of a join; on failure, what was done is undone and the step's own error (an ApiError) is thrown. */
export async function admitJoin<R extends ControlPlaneJoinReply | WorkerJoinReply>(steps: Step<AdmitCtx>[], ctx: AdmitCtx): Promise<R> {
  try {
    await runFlow(`admit ${ctx.body.role} join`, steps, ctx, (e) => {
      if (e.type === 'rollback' && e.error) ctx.log.warn('undoing a join step failed', { node: ctx.body.node.name, step: e.step, error: e.error });
    });
  } catch (err) {
    throw err instanceof FlowError ? err.cause : err;
  }
  return ctx.reply as R;
}
