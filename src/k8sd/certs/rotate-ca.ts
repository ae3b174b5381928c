// Online rotation of the server CA, the client CA and the front-proxy CA, on every node.
//  1. trust:   a new CA per kind goes into every trust bundle next to the old one;
//  2. reissue: every leaf and kubeconfig is re-issued under the new CAs; serving leaves are sent
//              with the new CA cross-signed by the old one, so clients that trust only the old
//              CA keep working;
//  3. retire:  the old CAs leave the bundles.
// The control-plane node that runs the command orchestrates: it checks that every member
// answers on the cluster API before changing anything, holds the join lock so that no node joins
// or leaves meanwhile, stores each phase's CA set in the datastore, and applies the phase on every
// node (rotate-ca-node.ts) before the next phase starts. The rotation is recorded in the datastore
// with the nodes that finished the current phase: after a failure, running the command again
// resumes there. The etcd CA is internal to the control plane and is not part of the rotation.
import { randomBytes } from 'node:crypto';
import { takeClusterLock } from '../cluster/lock.js';
import { CaRotationPhase, CaRotationRecord, ClusterConfig, LocalNodeState, PkiRecord } from '../../datastore/state.js';
import { caTemplate, CaMaterial, generateCa } from '../../pki/signer.js';
import { CAS, ROTATED_CAS, RotatedCaName } from '../../pki/table.js';
import type { K8sd } from '../daemon.js';
import { at, ApiError, Request, Route } from '../http.js';
import { peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { peerRecordOf } from '../membership/join-server.js';
import { requireControlPlaneCaller } from '../cluster/peer-auth.js';
import { PeerIdentity, peerRequest, peerTarget } from '../cluster/peer.js';
import { caRotationLockHolder, MemberRecord, MembershipStore, rotatingNode } from '../membership/store.js';
import { clusterContext } from './refresh.js';
import { applyOnControlPlane, applyOnWorker, externalBlockers, WorkerPhaseInput, workerPhaseInput } from './rotate-ca-node.js';
import { caSetFor, recordDone, recordPhase, remainingSteps, RotationMember, RotationStep } from './rotation-plan.js';

export type RotationEvent =
  | { type: 'step'; step: CaRotationPhase; title: string }
  | { type: 'node'; step: CaRotationPhase; node: string; role: RotationMember['role']; detail: string }
  | { type: 'info'; message: string };

export interface RotationResult {
  cas: Record<string, string>;
  nodes: string[];
}

const PHASE_TITLES: Record<CaRotationPhase, string> = {
  trust: 'Adding new CAs to every trust bundle',
  reissue: 'Re-issuing certificates and kubeconfigs under the new CAs',
  retire: 'Retiring the old CAs',
};

const CHECK_TIMEOUT_MS = 10_000;
/** Idle time allowed for one node's phase (a worker's reissue waits for its new serving certificate). */
const APPLY_TIMEOUT_MS = 600_000;
const LOCK_TTL_SECONDS = 60;
const LOCK_WAIT_MS = 30_000;

interface CheckReply {
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
class JoinLockKeeper {
  private timer: NodeJS.Timeout;
  private renewing: Promise<void> = Promise.resolve();
  private lost = false;

  constructor(
    private readonly store: MembershipStore,
    private readonly holder: string,
    private lease: string,
    private readonly d: K8sd,
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
      this.d.log.warn('CA rotation: could not extend the join lock; retrying', { error: (err as Error).message });
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

function cnOf(d: K8sd, pem: string): string {
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
async function preflight(d: K8sd, self: LocalNodeState, members: MemberRecord[], identity: PeerIdentity): Promise<string> {
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
  return members.map((m) => `${m.name} (${m.role})`).join(', ');
}

async function newRotation(d: K8sd, self: LocalNodeState, config: ClusterConfig, pki: PkiRecord): Promise<CaRotationRecord> {
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
  const record: CaRotationRecord = {
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
  if (!(await d.state!.createCaRotation(record))) throw new ApiError(409, 'another CA rotation was recorded a moment ago; run "k8s rotate-certs-ca" again to resume it');
  return record;
}

async function applyStep(d: K8sd, r: CaRotationRecord, step: RotationStep, self: string, members: MemberRecord[], identity: PeerIdentity): Promise<string> {
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

export async function rotateCas(d: K8sd, onEvent: (e: RotationEvent) => void): Promise<RotationResult> {
  const { node: self, config, pki } = await clusterContext(d);
  const identity: PeerIdentity = { cert: d.identity.cert, key: d.identity.key };
  const state = d.state!;
  const store = new MembershipStore(state);
  const lock = new JoinLockKeeper(store, caRotationLockHolder(self.name), await takeJoinLock(store, self.name), d);
  try {
    let record = await state.getCaRotation();
    const missing = ROTATED_CAS.filter((n) => !pki.cas[n]);
    if (!record && missing.length) {
      throw new ApiError(409, `the cluster's PKI record holds no ${missing.join(', ')} (the cluster was bootstrapped before k8sd had it); this version cannot rotate its CAs`);
    }
    if (!record && ROTATED_CAS.some((n) => !pki.cas[n].key)) {
      throw new ApiError(400, 'a CA was supplied without its key (externally managed); rotate it with your own PKI and install the results with refresh-certs --external-certificates');
    }
    // Under the join lock: no control-plane join is half-way, and workers check for a recorded rotation after registering.
    const members = await store.members();
    const answered = await preflight(d, self, members, identity);
    onEvent({ type: 'info', message: `every node answers: ${answered}` });
    if (record) {
      const done = record.done.length ? `; done on ${record.done.join(', ')}` : '';
      const failed = record.lastError ? `; it stopped on ${record.lastError.node}: ${record.lastError.message}` : '';
      onEvent({ type: 'info', message: `resuming the CA rotation started on ${record.startedOn} at ${record.startedAt} in its ${record.phase} phase${done}${failed}` });
    } else {
      record = await newRotation(d, self, config, pki);
    }
    let phase: CaRotationPhase | undefined;
    for (const step of remainingSteps(record, members, self.name)) {
      lock.assertHeld();
      if (step.phase !== phase) {
        phase = step.phase;
        onEvent({ type: 'step', step: phase, title: PHASE_TITLES[phase] });
        record = recordPhase(record, phase);
        await state.putCaRotation(record);
        // The PKI record first: the control plane signs workers' client and kubelet serving certificates with it.
        const current = (await state.getPki())!;
        await state.putPki({ ...current, cas: caSetFor(phase, record, current.cas) });
      }
      let detail: string;
      try {
        detail = await applyStep(d, record, step, self.name, members, identity);
      } catch (err) {
        const message = (err as Error).message;
        record = { ...record, lastError: { phase: step.phase, node: step.node.name, message, at: new Date().toISOString() } };
        await state.putCaRotation(record).catch(() => undefined);
        throw new ApiError(
          502,
          `the ${step.phase} phase failed on ${step.node.role} node "${step.node.name}": ${message}. ` +
            'The rotation stopped there and is recorded; fix the cause and run "k8s rotate-certs-ca" again to resume it',
        );
      }
      onEvent({ type: 'node', step: step.phase, node: step.node.name, role: step.node.role, detail });
      record = recordDone(record, step.phase, step.node.name);
      await state.putCaRotation(record);
    }
    const current = (await state.getPki())!;
    await state.putPki({ ...current, cas: caSetFor('retire', record, current.cas) });
    await state.deleteCaRotation();
    d.log.info('CA rotation complete', { cas: ROTATED_CAS, nodes: members.map((m) => m.name) });
    return { cas: Object.fromEntries(ROTATED_CAS.map((n) => [n, cnOf(d, record.fresh[n].cert)])), nodes: members.map((m) => m.name).sort() };
  } finally {
    await lock.release().catch((err: Error) => d.log.warn('CA rotation: could not release the join lock; it expires by itself', { error: err.message }));
  }
}

/** The cluster-API side, served by every node (workers too, so the routes check their caller themselves). */
export function rotationClusterRoutes(d: K8sd, exclusive: <T>(f: () => Promise<T>) => Promise<T>): Route[] {
  const node = (): LocalNodeState => {
    const n = d.node();
    if (!n) throw new ApiError(409, 'this node is not part of a cluster');
    return n;
  };
  return [
    {
      ...at(peer.caRotationCheck),
      caller: 'control-plane',
      handler: async (req: Request): Promise<CheckReply> => {
        await requireControlPlaneCaller(d, req, 'take part in a CA rotation');
        const n = node();
        return { name: n.name, role: n.role, external: n.role === 'control-plane' ? externalBlockers(d) : [] };
      },
    },
    {
      ...at(peer.caRotationApply),
      caller: 'control-plane',
      handler: async (req: Request) => {
        await requireControlPlaneCaller(d, req, 'take part in a CA rotation');
        const n = node();
        const body = parseRequest(peer.caRotationApply, req.body);
        const phase = body.phase;
        return exclusive(async () => {
          if (n.role === 'worker') {
            const w = body.worker;
            if (typeof w?.caCert !== 'string' || typeof w.clientCaCert !== 'string') throw new ApiError(400, 'malformed request: a worker needs the CA bundles');
            return { node: n.name, role: n.role, detail: await applyOnWorker(d, phase, w) };
          }
          if (!d.state) throw new ApiError(503, 'the datastore is not connected on this node yet; retry in a few seconds');
          const r = await d.state.getCaRotation();
          if (!r || r.id !== body.id || r.phase !== phase) {
            throw new ApiError(409, `the datastore records no CA rotation ${body.id} in its ${phase} phase (it holds ${r ? `${r.id} in its ${r.phase} phase` : 'none'})`);
          }
          return { node: n.name, role: n.role, detail: await applyOnControlPlane(d, r, phase) };
        });
      },
    },
  ];
}
