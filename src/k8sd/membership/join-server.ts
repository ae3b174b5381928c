// The control-plane side of joins, on the cluster API (port 6400; routes/peer/).
//   POST /1.0/k8sd/members/join        untrusted: authenticated by the join token
//   POST /1.0/k8sd/members/promote     the joining control-plane node, once its etcd learner runs
//   POST /1.0/k8sd/members/abort       the joining control-plane node, when its join fails (its token stays spent)
//   GET  /1.0/k8sd/members             members: control-plane nodes and API server endpoints
//   POST /1.0/k8sd/members/certificates a worker renewing its client certificates (CSRs)
// Every rejection happens before anything is written: a bad token, name or address changes nothing.
// A token is spent for good once a join reply carries certificates or CA material: nothing puts it
// back after that (admission.ts says which names and addresses a node may claim).
import { nodeFeatureView } from '../features/node.js';
import type { TLSSocket } from 'node:tls';
import { ClusterConfig, PkiRecord } from '../../datastore/state.js';
import { keyAlgorithmOf } from '../../crypto/node.js';
import { CertificateTemplate, CryptoBackend } from '../../crypto/types.js';
import { leafTemplate, trustBundle } from '../../pki/signer.js';
import { KUBECONFIGS, NodeIdentity } from '../../pki/table.js';
import { etcdPeerUrl } from '../controlplane.js';
import { ApiError, Request } from '../http.js';
import { peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { fingerprintOf } from '../identity.js';
import { WORKER_CLIENT_CERTS, type ControlPlaneJoinReply, type JoinRequestBody, type MembersReply, type WorkerClientCert, type WorkerClusterConfig, type WorkerJoinReply } from './join-messages.js';
import { checkAddressClaim, checkAddressForm, checkNodeName, NodeAdmissionError } from './admission.js';
import type { MembershipContext } from './context.js';
import { joinHostPort, PeerRecord } from '../cluster/peer.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { takeClusterLock } from '../cluster/lock.js';
import { JoinInFlight, MemberRecord, MembershipStore, rotatingNode } from './store.js';
import { admitControlPlaneSteps, admitJoin, admitWorkerSteps, JoinAdmission, VerifiedToken } from '../flows/admit-join.js';
import { kubernetesNodeExists } from './kube-clients.js';
import { secretMatches } from './token.js';

/** How long a control-plane join may hold the join lock (learner added → promoted). */
export const JOIN_LOCK_TTL_SECONDS = 90;
/** How long the server waits for the join lock before telling the joiner to retry. */
const LOCK_WAIT_MS = 20_000;
export { WORKER_CLIENT_CERTS, workerClientSubject } from './join-messages.js';
export type { ControlPlaneJoinReply, JoinRequestBody, MembersReply, WorkerClientCert, WorkerClusterConfig, WorkerJoinReply } from './join-messages.js';

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DAY_MS = 86_400_000;

/** Lifetime of the leaf certificates this cluster issues. */
export function leafLifetimeMs(c: ClusterConfig): number {
  return c.certificates?.lifetimeMs ?? 365 * DAY_MS;
}

export function workerClusterConfig(c: ClusterConfig): WorkerClusterConfig {
  const view = nodeFeatureView(c);
  return {
    podCidr: c.podCidr,
    serviceCidr: c.serviceCidr,
    clusterDomain: view.clusterDomain,
    ...(view.dnsServiceIp ? { dnsServiceIp: view.dnsServiceIp } : {}),
    network: view.network,
    securePort: c.securePort,
    failCgroupV1: c.failCgroupV1,
    keyType: c.keyType,
    leafLifetimeMs: leafLifetimeMs(c),
    ...(c.certificates ? { certificates: c.certificates } : {}),
  };
}

function parseJoinBody(m: MembershipContext, req: Request): JoinRequestBody {
  const b = parseRequest(peer.memberJoin, req.body);
  const bad = (what: string): never => {
    throw new ApiError(400, `malformed join request: ${what}`);
  };
  if (!NAME_RE.test(b.node.name)) bad('node.name must be a lower-case DNS label');
  admissionChecked(() => checkAddressForm(b.node.address));
  let fp: string;
  try {
    fp = fingerprintOf(m.d.crypto, b.node.clusterCert);
  } catch {
    return bad('node.clusterCert is not a PEM certificate');
  }
  if (!req.peerFingerprint || fp !== req.peerFingerprint) {
    throw new ApiError(400, 'the certificate in the join request is not the TLS client certificate of this connection');
  }
  return b;
}

function admissionChecked<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof NodeAdmissionError) throw new ApiError(err.status, err.message);
    throw err;
  }
}

/**
 * The name and address a joining node claims (admission.ts): not reserved, not another member's,
 * and the address the source of this very connection unless the token names it. Changes nothing.
 * `resuming`: a control-plane join that starts again over its own unfinished record.
 */
async function admitNode(m: MembershipContext, store: MembershipStore, req: Request, body: JoinRequestBody, t: VerifiedToken, config: ClusterConfig, resuming = false): Promise<void> {
  const { name, address } = body.node;
  const members = await store.members();
  admissionChecked(() => {
    checkNodeName(name, { clusterDomain: config.clusterDomain, extraSans: config.extraSans ?? [], members, ...(resuming ? { self: name } : {}) });
    checkAddressClaim({ name, address, source: req.raw.socket.remoteAddress, members, ...(t.record.address ? { allowedAddress: t.record.address } : {}) });
  });
  if (!resuming && (await kubernetesNodeExists(m.d, name))) {
    throw new ApiError(409, `a Kubernetes node named "${name}" already exists; delete it ("kubectl delete node ${name}") or join with another --name`);
  }
}

/** TLS protocol versions and cipher suites a FIPS cluster accepts on a join connection. */
const FIPS_TLS_VERSIONS = new Set(['TLSv1.2', 'TLSv1.3']);
const FIPS_CIPHER = /^TLS_(AES_(128|256)_GCM_SHA(256|384)|ECDHE_(ECDSA|RSA)_WITH_AES_(128|256)_GCM_SHA(256|384))$/;

/**
 * What the cluster can check of a joiner's cryptography: the keys it presents (its cluster
 * certificate, its CSRs) are of an approved algorithm and size, and, in a FIPS cluster, the join
 * connection negotiated an approved protocol and cipher. Whether the joiner's own k8sd really
 * runs on a FIPS provider cannot be seen from here (docs/threat-model/joins.md).
 */
function checkJoinerCrypto(req: Request, body: JoinRequestBody, config: ClusterConfig): void {
  checkKeyAccepted('node.clusterCert', body.node.clusterCert);
  if (!config.fips) return;
  const socket = req.raw.socket as TLSSocket;
  const protocol = typeof socket.getProtocol === 'function' ? socket.getProtocol() : null;
  const cipher = typeof socket.getCipher === 'function' ? socket.getCipher() : undefined;
  if (!protocol || !FIPS_TLS_VERSIONS.has(protocol) || !cipher || !FIPS_CIPHER.test(cipher.standardName)) {
    throw new ApiError(403, `this cluster runs in FIPS mode and the join connection negotiated ${protocol ?? 'no TLS'} with ${cipher?.standardName ?? 'no cipher'}, which FIPS does not approve; join from a k8sd in FIPS mode`);
  }
}

/** A key (of a certificate or a CSR's SPKI) is of an algorithm and size k8sd itself would make. */
function checkKeyAccepted(key: string, pem: string): void {
  try {
    keyAlgorithmOf(pem);
  } catch (err) {
    throw new ApiError(400, `${key}: its key is not one this cluster accepts (${(err as Error).message}); k8sd makes ECDSA P-256/P-384 or RSA 2048-4096 keys itself, let it make this one`);
  }
}

/** Checks the token against the cluster's record. Changes nothing. */
async function verifyToken(m: MembershipContext, store: MembershipStore, body: JoinRequestBody): Promise<VerifiedToken> {
  const name = body.token.name;
  const t = await store.token(name);
  const unknown = new ApiError(401, `join token "${name}" is not valid in this cluster: it was already used, revoked, or never issued here; ask for a new one with "k8s get-join-token"`);
  if (!t) throw unknown;
  if (!(await secretMatches(m.d.crypto, body.token.secret, t.record.secretHash))) throw unknown;
  if (new Date(t.record.expiresAt).getTime() <= Date.now()) {
    throw new ApiError(401, `join token "${name}" expired at ${t.record.expiresAt}; ask for a new one with "k8s get-join-token"`);
  }
  if (t.record.role !== body.role) {
    throw new ApiError(403, `join token "${name}" is for a ${t.record.role} node, but this node asked to join as a ${body.role}`);
  }
  if (t.record.bound && body.node.name !== t.record.name) {
    throw new ApiError(403, `join token "${name}" is for node "${t.record.name}", not "${body.node.name}"; join with --name ${t.record.name}, or ask for a token for "${body.node.name}"`);
  }
  return t;
}

/** How to call a member's k8sd: its address on the cluster port, pinned to its cluster certificate. */
export function peerRecordOf(crypto: CryptoBackend, r: MemberRecord): PeerRecord {
  return { name: r.name, address: r.address, role: r.role, fingerprint: fingerprintOf(crypto, r.clusterCert), clusterPort: K8SD_CLUSTER_PORT };
}

export async function controlPlanePeers(m: MembershipContext, store: MembershipStore): Promise<PeerRecord[]> {
  return (await store.members()).filter((r) => r.role === 'control-plane' && !r.joining).map((r) => peerRecordOf(m.d.crypto, r));
}

export function apiserverEndpoints(peers: PeerRecord[], securePort: number): string[] {
  return peers.filter((p) => p.role === 'control-plane').map((p) => joinHostPort(p.address, securePort));
}

async function requireConfig(store: MembershipStore): Promise<{ config: ClusterConfig; pki: PkiRecord }> {
  const [config, pki] = await Promise.all([store.state.getConfig(), store.state.getPki()]);
  if (!config || !pki) throw new ApiError(503, 'the cluster state holds no configuration or CA material; this control-plane node cannot admit nodes');
  return { config, pki };
}

/** The caller must be the node it names (its TLS certificate is that node's cluster certificate). */
async function requireCallerIs(m: MembershipContext, store: MembershipStore, req: Request, name: string): Promise<MemberRecord | undefined> {
  const rec = await store.member(name);
  if (!rec) return undefined;
  if (fingerprintOf(m.d.crypto, rec.clusterCert) !== req.peerFingerprint) {
    throw new ApiError(403, `only node "${name}" itself may do this`);
  }
  return rec;
}

export async function handleJoin(m: MembershipContext, req: Request): Promise<unknown> {
  const node = m.d.node();
  if (!node || node.role !== 'control-plane' || !m.d.state) {
    throw new ApiError(503, 'this node is not a control-plane member of a cluster; join through another control-plane node');
  }
  const body = parseJoinBody(m, req);
  const store = m.store();
  const verified = await verifyToken(m, store, body);
  const { config } = await requireConfig(store);
  // A FIPS cluster stays FIPS throughout: refused before the token is used, nothing changes.
  if (config.fips && body.fips !== true) {
    throw new ApiError(
      409,
      'this cluster runs in FIPS mode and the joining node\'s k8sd does not: start k8sd there with K8S_FIPS=1 (snap: snap set k8s fips=true) on a host with an active OpenSSL FIPS provider, then join',
    );
  }
  checkJoinerCrypto(req, body, config);
  if (body.role === 'control-plane') return joinControlPlane(m, store, req, body);
  await admitNode(m, store, req, body, verified, config);
  return joinWorker(m, store, req, body, verified);
}

/**
 * A node joining during an unfinished CA rotation would miss its earlier phases. Also called after
 * a worker registers (workers do not take the join lock): a rotation lists the members after it
 * recorded itself, so either it sees the worker or the worker sees the rotation.
 */
async function refuseDuringCaRotation(store: MembershipStore): Promise<void> {
  const r = await store.state.getCaRotation();
  if (r) {
    throw new ApiError(
      409,
      `a CA rotation (started on "${r.startedOn}" at ${r.startedAt}) has not finished: it is in its ${r.phase} phase; ` +
        'finish it with "k8s rotate-certs-ca" on a control-plane node, then join',
    );
  }
}

async function waitForJoinLock(store: MembershipStore, holder: string): Promise<string> {
  return takeClusterLock(store, holder, {
    ttlSeconds: JOIN_LOCK_TTL_SECONDS,
    waitMs: LOCK_WAIT_MS,
    pauseMs: 250,
    refuse(current, timedOut) {
      if (!timedOut) return undefined;
      const rotating = rotatingNode(current ?? '');
      if (rotating) return new ApiError(409, `a CA rotation runs on "${rotating}" right now; join again when "k8s rotate-certs-ca" has finished`);
      return new ApiError(409, `another node ("${current ?? 'another node'}") is joining the control plane right now; joins are queued, retry in a few seconds`);
    },
  });
}

async function joinControlPlane(m: MembershipContext, store: MembershipStore, req: Request, body: JoinRequestBody): Promise<ControlPlaneJoinReply> {
  const { config, pki } = await requireConfig(store);
  if (config.datastoreType !== 'etcd') {
    throw new ApiError(501, 'control-plane joins with an external datastore are not supported yet; join this node as a worker');
  }
  return admitJoin<ControlPlaneJoinReply>(admitControlPlaneSteps, { store, etcd: store.state.etcd, log: m.log, body, config, pki, admission: joinAdmission(m, store, req, body, config, pki) });
}

/** Membership's checks of one join, for the admit flows. */
function joinAdmission(m: MembershipContext, store: MembershipStore, req: Request, body: JoinRequestBody, config: ClusterConfig, pki: PkiRecord): JoinAdmission {
  return {
    lock: () => waitForJoinLock(store, body.node.name),
    refuseDuringCaRotation: () => refuseDuringCaRotation(store),
    verifyToken: () => verifyToken(m, store, body),
    admit: (t, resuming) => admitNode(m, store, req, body, t, config, resuming),
    controlPlanePeers: () => controlPlanePeers(m, store),
    checkCsrs: () => checkCsrs(m, body.csrs, WORKER_CLIENT_CERTS),
    signCsrs: async (csrs) => (await signWorkerCsrs(m, body.node.name, csrs, config, pki)) as Record<WorkerClientCert, string>,
    workerConfig: () => workerClusterConfig(config),
    apiserverEndpoints: (peers) => apiserverEndpoints(peers, config.securePort),
  };
}

async function signWorkerCsrs(
  m: MembershipContext,
  name: string,
  csrs: Partial<Record<WorkerClientCert, string>>,
  config: ClusterConfig,
  pki: PkiRecord,
): Promise<Partial<Record<WorkerClientCert, string>>> {
  const ca = pki.cas['client-ca'];
  if (!ca.key) throw new ApiError(501, 'the client CA key is external; worker client certificates must be supplied by whoever holds it');
  const identity: NodeIdentity = { hostname: name, address: '', localAddresses: [], serviceIps: [], extraSans: [], clusterDomain: config.clusterDomain };
  const out: Partial<Record<WorkerClientCert, string>> = {};
  for (const certName of WORKER_CLIENT_CERTS) {
    const pem = csrs[certName];
    if (!pem) continue;
    const spec = KUBECONFIGS.find((k) => k.name === certName)!;
    const template: CertificateTemplate = leafTemplate(spec, identity, leafLifetimeMs(config));
    try {
      // The subject and usages come from the PKI table, never from the request.
      out[certName] = await m.d.crypto.signCsr(pem, template, { certificatePem: ca.cert, privateKeyPem: ca.key });
    } catch (err) {
      throw new ApiError(400, `the ${certName} certificate request is invalid: ${(err as Error).message}`);
    }
  }
  return out;
}

async function checkCsrs(m: MembershipContext, csrs: JoinRequestBody['csrs'], required: readonly WorkerClientCert[]): Promise<Partial<Record<WorkerClientCert, string>>> {
  const out: Partial<Record<WorkerClientCert, string>> = {};
  for (const name of required) {
    const pem = csrs?.[name];
    if (typeof pem !== 'string') throw new ApiError(400, `malformed join request: a certificate request for ${name} is required`);
    let publicKeyPem: string;
    try {
      publicKeyPem = (await m.d.crypto.parseCsr(pem)).publicKeyPem;
    } catch (err) {
      throw new ApiError(400, `the ${name} certificate request is invalid: ${(err as Error).message}`);
    }
    checkKeyAccepted(`csrs.${name}`, publicKeyPem);
    out[name] = pem;
  }
  return out;
}

async function joinWorker(m: MembershipContext, store: MembershipStore, req: Request, body: JoinRequestBody, t: VerifiedToken): Promise<WorkerJoinReply> {
  const { config, pki } = await requireConfig(store);
  return admitJoin<WorkerJoinReply>(admitWorkerSteps, { store, etcd: store.state.etcd, log: m.log, body, config, pki, token: t, admission: joinAdmission(m, store, req, body, config, pki) });
}

/**
 * The control-plane node `name` calling about its own join: the caller's TLS certificate is that
 * node's cluster certificate and its record is a control-plane one. Also returns its in-flight
 * join record, if the join lock still holds one.
 */
async function requireControlPlaneSelf(m: MembershipContext, store: MembershipStore, req: Request, name: string, what: string): Promise<{ rec: MemberRecord; inFlight: JoinInFlight | undefined }> {
  const rec = await requireCallerIs(m, store, req, name);
  if (!rec) throw new ApiError(404, `node "${name}" has no pending join (it was aborted or expired); join again with a new token`);
  if (rec.role !== 'control-plane') {
    throw new ApiError(403, `node "${name}" joined as a worker and received its certificates; a worker may not ${what} a join: on a control-plane node run "k8s remove-node ${name}", then join again with a new token`);
  }
  const inFlight = await store.join(name);
  return { rec, inFlight: inFlight?.name === name ? inFlight : undefined };
}

export async function handlePromote(m: MembershipContext, req: Request): Promise<unknown> {
  const { name, memberId } = parseRequest(peer.memberPromote, req.body);
  const store = m.store();
  const { rec, inFlight } = await requireControlPlaneSelf(m, store, req, name, 'promote');
  // The lock's lease may have run out on a slow join (the in-flight record goes with it): then
  // the member's peer URL below is what ties it to this node.
  if (inFlight && inFlight.memberId !== memberId) {
    throw new ApiError(403, `datastore member ${memberId} is not the one the join of "${name}" added; join again`);
  }
  const etcd = store.state.etcd;
  const member = (await etcd.members()).find((x) => x.id === memberId);
  if (!member) throw new ApiError(404, `datastore member ${memberId} of node "${name}" no longer exists; join again`);
  const config = await store.state.getConfig();
  if (!config || !member.peerURLs.includes(etcdPeerUrl(rec.address, config.etcdPeerPort))) {
    throw new ApiError(403, `datastore member ${memberId} does not belong to node "${name}"`);
  }
  if (member.isLearner) {
    try {
      await etcd.promote(memberId);
    } catch (err) {
      const msg = (err as Error).message;
      if (/in sync|not ready|too many requests/i.test(msg)) throw new ApiError(409, `the etcd learner of "${name}" is still catching up: ${msg}`);
      throw new ApiError(500, `could not promote the etcd learner of "${name}": ${msg}`);
    }
  }
  const { joining: _joining, ...done } = rec;
  await store.putMember(done);
  if (inFlight) await store.unlock(inFlight.lease);
  m.log.info('control-plane join: etcd member promoted to voter', { node: name, member: memberId });
  await m.refreshPeers().catch(() => undefined);
  return { promoted: true };
}

/**
 * A control-plane join that failed on the joining node: its etcd member and its record go, the
 * join lock is released. Its token is not put back: the join reply carried the cluster's CA
 * material, so the token has served. A worker cannot abort (its certificates were issued with the
 * reply); an operator removes it with "k8s remove-node".
 */
export async function handleAbort(m: MembershipContext, req: Request): Promise<unknown> {
  const { name, memberId } = parseRequest(peer.memberAbort, req.body);
  const store = m.store();
  // Nothing registered under that name: nothing this caller may undo.
  if (!(await store.member(name))) return { aborted: false };
  // Also after promotion: a join that fails in a later step takes its own (voting) member out
  // while its etcd still runs, so that a two-member cluster keeps quorum.
  const { rec, inFlight } = await requireControlPlaneSelf(m, store, req, name, 'abort');
  const config = await store.state.getConfig();
  const etcd = store.state.etcd;
  const ownPeerUrl = config ? etcdPeerUrl(rec.address, config.etcdPeerPort) : undefined;
  // Only the caller's own member (by its peer URL) may be removed this way.
  const own = memberId && ownPeerUrl ? (await etcd.members()).find((x) => x.id === memberId && x.peerURLs.includes(ownPeerUrl)) : undefined;
  if (own) await etcd.removeMember(own.id);
  await store.deleteMember(name);
  if (inFlight) await store.unlock(inFlight.lease);
  m.log.warn('control-plane join aborted by the joining node; its token is spent', { node: name });
  return { aborted: true };
}

export async function handleMembers(m: MembershipContext): Promise<MembersReply> {
  const store = m.store();
  const { config, pki } = await requireConfig(store);
  const members = await controlPlanePeers(m, store);
  return {
    members,
    features: nodeFeatureView(config),
    apiservers: apiserverEndpoints(members, config.securePort),
    caCert: trustBundle(pki.cas.ca),
    clientCaCert: trustBundle(pki.cas['client-ca']),
  };
}

export async function handleCertificates(m: MembershipContext, req: Request): Promise<unknown> {
  const { name, csrs } = parseRequest(peer.memberCertificates, req.body);
  const store = m.store();
  const rec = await requireCallerIs(m, store, req, name);
  if (!rec || rec.role !== 'worker') throw new ApiError(403, `"${name}" is not a worker node of this cluster`);
  const wanted = WORKER_CLIENT_CERTS.filter((c) => csrs[c] !== undefined);
  if (!wanted.length) throw new ApiError(400, `no certificate requests; send any of ${WORKER_CLIENT_CERTS.join(', ')}`);
  const checked = await checkCsrs(m, csrs, wanted);
  const { config, pki } = await requireConfig(store);
  const certificates = await signWorkerCsrs(m, name, checked, config, pki);
  m.log.info('signed renewed worker client certificates', { node: name, certificates: wanted });
  return { certificates, caCert: trustBundle(pki.cas.ca), clientCaCert: trustBundle(pki.cas['client-ca']) };
}
