// CA rotation's side in the certificates module: the operations the rotation flow
// (flows/rotate-ca.ts, which says what happens in which order) performs on this node, and the
// phases every other node applies when the orchestrating node asks (routes/peer/ca-rotation-*.ts).
//  1. trust:   a new CA per kind goes into every trust bundle next to the old one;
//  2. reissue: every leaf and kubeconfig is re-issued under the new CAs; serving leaves are sent
//              with the new CA cross-signed by the old one, so clients that trust only the old
//              CA keep working;
//  3. retire:  the old CAs leave the bundles.
// The etcd CA is internal to the control plane and is not part of the rotation.
import { randomBytes } from 'node:crypto';
import { takeClusterLock } from '../cluster/lock.js';
import { CaRotationPhase, CaRotationRecord, ClusterConfig, LocalNodeState, PkiRecord } from '../../datastore/state.js';
import { caTemplate, CaMaterial, generateCa } from '../../pki/signer.js';
import { CAS, ROTATED_CAS, RotatedCaName } from '../../pki/table.js';
import type { CertsNode, RenewWorkerCertificates } from './node.js';
import { rotateCas, type RotationCtx, type RotationEvent, type RotationOps, type HeldLock } from '../flows/rotate-ca.js';
import type { Logger } from '../../log.js';
import type { ServerResponse } from 'node:http';
import { ApiError } from '../http.js';
import { peer, type ParsedRequestOf } from '../../api/index.js';
import { streamProgress } from '../cluster/progress.js';
import { peerRecordOf } from '../membership/join-server.js';
import { PeerIdentity, peerRequest, peerTarget } from '../cluster/peer.js';
import { caRotationLockHolder, MemberRecord, MembershipStore, rotatingNode } from '../membership/store.js';
import { clusterContext } from './refresh.js';
import { applyOnControlPlane, applyOnWorker, externalBlockers, WorkerPhaseInput, workerPhaseInput } from './rotate-ca-node.js';
import { RotationMember, RotationStep } from './rotation-plan.js';

const CHECK_TIMEOUT_MS = 10_000;
/** Idle time allowed for one node's phase (a worker's reissue waits for its new serving certificate). */
const APPLY_TIMEOUT_MS = 600_000;
const LOCK_TTL_SECONDS = 60;
const LOCK_WAIT_MS = 30_000;

export interface CheckReply {
  name: string;
  role: RotationMember['role'];
  /** Externally managed certificates signed by a rotated CA (control-plane nodes). */
  external: string[];
}

interface ApplyBody {
  id: string;
  phase: CaRotationPhase;
  worker?: WorkerPhaseInput;
}

/** Keeps the join lock for as long as the rotation runs (one lease would expire half-way). */
class JoinLockKeeper implements HeldLock {
  private timer: NodeJS.Timeout;
  private renewing: Promise<void> = Promise.resolve();
  private lost = false;

  constructor(
    private readonly store: MembershipStore,
    private readonly holder: string,
    private lease: string,
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => {
      this.renewing = this.renewing.then(() => this.renew());
    }, (LOCK_TTL_SECONDS * 1000) / 3);
  }

  private async renew(): Promise<void> {
    try {
      const next = await this.store.renewJoinLock(this.holder, this.lease, LOCK_TTL_SECONDS);
      if (next) this.lease = next;
      else this.lost = true;
    } catch (err) {
      this.log.warn('CA rotation: could not extend the join lock; retrying', { error: (err as Error).message });
    }
  }

  assertHeld(): void {
    if (this.lost) throw new ApiError(409, 'the CA rotation lost the join lock (the datastore was out of reach for a minute); run "k8s rotate-certs-ca" again to resume');
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
    await this.store.unlock(this.lease);
  }
}

export function cnOf(d: Pick<CertsNode, 'crypto'>, pem: string): string {
  return d.crypto.parseCertificate(pem).subject.commonName;
}

/** Waits a little for the join lock: a control-plane join holds it until its etcd member is promoted. */
async function takeJoinLock(store: MembershipStore, self: string): Promise<string> {
  return takeClusterLock(store, caRotationLockHolder(self), {
    ttlSeconds: LOCK_TTL_SECONDS,
    waitMs: LOCK_WAIT_MS,
    pauseMs: 500,
    refuse(current, timedOut) {
      const holder = current ?? 'another operation';
      const rotating = rotatingNode(holder);
      if (rotating) return new ApiError(409, `a CA rotation is already running on "${rotating}"; nothing was changed`);
      if (!timedOut) return undefined;
      return new ApiError(409, `the cluster's join lock is held by "${holder}" (a node joining, or another cluster-wide rotation); nothing was changed, run "k8s rotate-certs-ca" again when it has finished`);
    },
  });
}

/** Every other member must answer on the cluster API, and no control-plane node may hold an external certificate of a rotated CA. */
async function preflight(d: Pick<CertsNode, 'crypto' | 'layout'>, self: LocalNodeState, members: MemberRecord[], identity: PeerIdentity): Promise<void> {
  const others = members.filter((m) => m.name !== self.name);
  const replies = await Promise.allSettled(
    others.map((m) => peerRequest<CheckReply>(identity, peerTarget(peerRecordOf(d.crypto, m)), 'POST', peer.caRotationCheck.path, {}, CHECK_TIMEOUT_MS)),
  );
  const down = others.flatMap((m, i) => {
    const r = replies[i]!;
    return r.status === 'rejected' ? [`${m.name} (${m.role}${m.joining ? ', joining' : ''}): ${(r.reason as Error).message}`] : [];
  });
  if (down.length) {
    throw new ApiError(
      503,
      `not every node answers over the cluster API, so the CA rotation did not start (nothing was changed): ${down.join('; ')}. ` +
        'Bring the node back, or remove it with "k8s remove-node <name> --force", then run "k8s rotate-certs-ca" again',
    );
  }
  const blockers = [{ name: self.name, external: externalBlockers(d) }, ...replies.map((r) => (r as PromiseFulfilledResult<CheckReply>).value)].filter((b) => b.external.length);
  if (blockers.length) {
    const names = blockers.map((b) => `${b.external.join(', ')} (on ${b.name})`).join('; ');
    throw new ApiError(400, `${names}: externally managed and signed by a CA that the rotation replaces; rotate with your own PKI and install the results with refresh-certs --external-certificates`);
  }
}

/** New CAs and the cross-signed ones, as a record that is not stored yet (the flow stores it). */
async function newRotation(d: Pick<CertsNode, 'crypto'>, self: LocalNodeState, config: ClusterConfig, pki: PkiRecord): Promise<CaRotationRecord> {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 13);
  const old = {} as Record<RotatedCaName, CaMaterial>;
  const fresh = {} as Record<RotatedCaName, CaMaterial>;
  for (const name of ROTATED_CAS) {
    old[name] = pki.cas[name];
    fresh[name] = await generateCa(d.crypto, `${CAS.find((c) => c.name === name)!.commonName}-${stamp}`, config.keyType);
  }
  const crossSign = (name: 'ca' | 'kubelet-ca'): Promise<string> =>
    d.crypto.crossSign(fresh[name].cert, caTemplate(cnOf(d, fresh[name].cert)), { certificatePem: old[name].cert, privateKeyPem: old[name].key! });
  const [crossSignedCa, crossSignedKubeletCa] = await Promise.all([crossSign('ca'), crossSign('kubelet-ca')]);
  return {
    id: `${stamp}-${randomBytes(3).toString('hex')}`,
    startedAt: new Date().toISOString(),
    startedOn: self.name,
    phase: 'trust',
    done: [],
    old,
    fresh,
    crossSignedCa,
    crossSignedKubeletCa,
  };
}

async function applyStep(d: CertsNode, r: CaRotationRecord, step: RotationStep, self: string, members: MemberRecord[], identity: PeerIdentity): Promise<string> {
  if (step.node.name === self) return applyOnControlPlane(d, r, step.phase);
  const member = members.find((m) => m.name === step.node.name)!;
  const body: ApplyBody = { id: r.id, phase: step.phase };
  if (member.role === 'worker') {
    const pki = await d.state!.getPki();
    body.worker = workerPhaseInput(step.phase, r, pki!.cas, d.crypto);
  }
  const reply = await peerRequest<{ detail: string }>(identity, peerTarget(peerRecordOf(d.crypto, member)), 'POST', peer.caRotationApply.path, body, APPLY_TIMEOUT_MS);
  return reply.detail;
}

/** The rotation flow's context on this node (flows/rotate-ca.ts runs it); `onEvent` gets what the CLI shows. */
export async function rotationContext(d: CertsNode, onEvent: (e: RotationEvent) => void): Promise<RotationCtx> {
  const { node: self, config, pki } = await clusterContext(d);
  const identity: PeerIdentity = { cert: d.identity.cert, key: d.identity.key };
  const state = d.state!;
  const store = new MembershipStore(state);
  const ops: RotationOps = {
    lock: async () => new JoinLockKeeper(store, caRotationLockHolder(self.name), await takeJoinLock(store, self.name), d.log),
    members: () => store.members(),
    checkMembers: (members) => preflight(d, self, members, identity),
    newRotation: (current) => newRotation(d, self, config, current),
    apply: (record, step, members) => applyStep(d, record, step, self.name, members, identity),
  };
  return { self: self.name, pki, state, ops, log: d.log, onEvent };
}

/** This node's record: CA rotation's cluster routes answer only on a node of a cluster. */
export function clusteredNode(d: Pick<CertsNode, 'node'>): LocalNodeState {
  const n = d.node();
  if (!n) throw new ApiError(409, 'this node is not part of a cluster');
  return n;
}

/** The check before a rotation (routes/peer/ca-rotation-check.ts): who this node is, and what would block it. */
export function rotationCheck(d: CertsNode, n: LocalNodeState): CheckReply {
  return { name: n.name, role: n.role, external: n.role === 'control-plane' ? externalBlockers(d) : [] };
}

/** Applies one phase of the rotation the datastore records on this node (routes/peer/ca-rotation-apply.ts), under the node's lock. */
export async function applyPhase(
  d: CertsNode,
  renewWorker: RenewWorkerCertificates,
  exclusive: <T>(f: () => Promise<T>) => Promise<T>,
  n: LocalNodeState,
  body: ParsedRequestOf<typeof peer.caRotationApply>,
): Promise<{ node: string; role: string; detail: string }> {
  const phase = body.phase;
  return exclusive(async () => {
    if (n.role === 'worker') {
      const w = body.worker;
      if (typeof w?.caCert !== 'string' || typeof w.clientCaCert !== 'string') throw new ApiError(400, 'malformed request: a worker needs the CA bundles');
      return { node: n.name, role: n.role, detail: await applyOnWorker(d, renewWorker, phase, w) };
    }
    if (!d.state) throw new ApiError(503, 'the datastore is not connected on this node yet; retry in a few seconds');
    const r = await d.state.getCaRotation();
    if (!r || r.id !== body.id || r.phase !== phase) {
      throw new ApiError(409, `the datastore records no CA rotation ${body.id} in its ${phase} phase (it holds ${r ? `${r.id} in its ${r.phase} phase` : 'none'})`);
    }
    return { node: n.name, role: n.role, detail: await applyOnControlPlane(d, r, phase) };
  });
}

/** Runs a CA rotation from this node (routes/certs/rotate-ca.ts), streaming its progress as NDJSON. */
export async function streamCaRotation(d: CertsNode, res: ServerResponse): Promise<undefined> {
  return streamProgress<RotationEvent>(res, d.log, 'CA rotation', async (emit) => {
    const ctx = await rotationContext(d, (e) => {
      d.log.info(`rotate-ca: ${e.type === 'step' ? e.title : e.type === 'node' ? `${e.step} on ${e.node}: ${e.detail}` : e.message}`);
      emit(e);
    });
    return rotateCas(ctx, (pem) => cnOf(d, pem));
  });
}
