// What one node does in each phase of an online CA rotation (flows/rotate-ca.ts runs the phases
// across the cluster). Every function here is idempotent: a rotation that stopped re-runs a phase
// on a node that may have finished it already.
//
// A phase on one node is one step of the rotation flow, not a flow of its own: it has nothing to
// undo in parts (the files are written as one set, then it waits for the services to take them),
// and a failure is recorded by the orchestrating node and resumed from there, never rolled back.
//
// A control-plane node reads the rotation record from the datastore and derives the phase's CA
// set from it (rotation-plan.ts). kube-apiserver re-reads its serving certificate, client CA,
// front-proxy CA and kubelet client certificate from disk by itself, so it is never restarted:
// the API serves throughout. The controller manager and the scheduler restart with their new
// kubeconfigs.
//
// A worker has no datastore: the orchestrating node sends it the phase's CA bundles. Its client
// certificates are re-signed by the control plane (which signs with the CA the datastore holds,
// the new one from the reissue phase on), and its kubelet asks for a new serving certificate
// through a CSR that k8sd's signer signs the same way.
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { CaRotationPhase, CaRotationRecord } from '../../datastore/state.js';
import { commitFileSet, FileSpec } from '../../host/files.js';
import { CaMaterial, kubeconfigFiles, trustBundle } from '../../pki/signer.js';
import { CAS, CaName, KUBECONFIGS, LEAVES, ROTATED_CAS } from '../../pki/table.js';
import { apiServerUrl, ServiceId } from '../../services/specs.js';
import { kubeletServingCertPath } from '../../services/worker-specs.js';
import type { CryptoBackend } from '../../crypto/types.js';
import type { NodeContext } from '../node-context.js';
import type { CertsNode, RenewWorkerCertificates } from './node.js';
import { ApiError } from '../http.js';
import { readCreds } from '../kube.js';
import { WORKER_CLIENT_CERTS } from '../membership/join-server.js';
import { firstPem, readExternal } from './inventory.js';
import { clusterContext, refreshControlPlane } from './refresh.js';
import { caSetFor } from './rotation-plan.js';

/** What the orchestrating node sends a worker for a phase (it has no datastore to read them from). */
export interface WorkerPhaseInput {
  /** Trust bundle of the server CA (pki/ca.crt and the kubeconfigs' CA data). */
  caCert: string;
  /** Trust bundle of the client CA (pki/client-ca.crt: the kubelet authenticates the apiserver with it). */
  clientCaCert: string;
  /** reissue: common name of the CA that must have signed the kubelet's new serving certificate (the new kubelet CA). */
  servingIssuer?: string;
}

export function workerPhaseInput(phase: CaRotationPhase, r: CaRotationRecord, current: Record<CaName, CaMaterial>, crypto: CryptoBackend): WorkerPhaseInput {
  const set = caSetFor(phase, r, current);
  return {
    caCert: trustBundle(set.ca),
    clientCaCert: trustBundle(set['client-ca']),
    ...(phase === 'reissue' ? { servingIssuer: crypto.parseCertificate((r.fresh['kubelet-ca'] ?? r.fresh.ca).cert).subject.commonName } : {}),
  };
}

const TRUST_TIMEOUT_MS = 120_000;
const SERVING_TIMEOUT_MS = 180_000;

function caFiles(d: Pick<NodeContext, 'layout'>, cas: Record<CaName, CaMaterial>): FileSpec[] {
  const files: FileSpec[] = [];
  for (const spec of CAS.filter((c) => (ROTATED_CAS as readonly CaName[]).includes(c.name))) {
    const m = cas[spec.name];
    files.push({ path: d.layout.pki(spec.certFile), content: trustBundle(m), mode: 0o644 });
    if (m.key) files.push({ path: d.layout.pki(spec.keyFile), content: m.key, mode: 0o600 });
  }
  return files;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

/** True when the apiserver authenticates a client certificate signed by `clientCa` (403 or 200, not 401). */
async function apiserverTrustsClientCa(d: Pick<NodeContext, 'crypto'>, server: string, clientCa: CaMaterial): Promise<boolean> {
  const key = await d.crypto.generateKeyPair('ecdsa-p256');
  const now = new Date();
  const cert = await d.crypto.createCertificate(
    { subject: { commonName: 'k8sd:ca-rotation-probe' }, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'], notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 600_000) },
    key,
    { certificatePem: clientCa.cert, privateKeyPem: clientCa.key! },
  );
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request(`${server}/api`, { cert, key: key.privateKeyPem, rejectUnauthorized: false, timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  return status === 403 || status === 200;
}

/** Issuer common name of the certificate the apiserver serves now. */
function servedIssuer(server: string): Promise<string> {
  const u = new URL(server);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, servername: 'kubernetes' }, () => {
      const issuer = sock.getPeerCertificate().issuer?.CN ?? '';
      sock.end();
      resolve(Array.isArray(issuer) ? issuer[0]! : issuer);
    });
    sock.on('error', reject);
  });
}

/** Certificates of this control-plane node that a rotated CA signed and k8sd manages (external ones excluded). */
export function rotatedCertificates(d: Pick<NodeContext, 'layout'>): string[] {
  const external = readExternal(d.layout).certificates;
  return [...LEAVES, ...KUBECONFIGS]
    .filter((s) => s.roles.includes('control-plane') && (ROTATED_CAS as readonly CaName[]).includes(s.issuer) && !external.includes(s.name))
    .map((s) => s.name);
}

/**
 * Externally managed certificates of this node signed by a rotated CA. They cannot be re-issued
 * under the new CA, and once the old CA retires nothing trusts them: a rotation refuses to start.
 */
export function externalBlockers(d: Pick<NodeContext, 'layout'>): string[] {
  const external = readExternal(d.layout).certificates;
  return [...LEAVES, ...KUBECONFIGS]
    .filter((s) => s.roles.includes('control-plane') && (ROTATED_CAS as readonly CaName[]).includes(s.issuer) && external.includes(s.name))
    .map((s) => s.name);
}

/** One phase on this control-plane node; returns what it did, for the CLI. */
export async function applyOnControlPlane(d: CertsNode, r: CaRotationRecord, phase: CaRotationPhase): Promise<string> {
  const { node, pki } = await clusterContext(d);
  const set = caSetFor(phase, r, pki.cas);
  const server = apiServerUrl({ nodeAddress: node.address, securePort: node.securePort });
  const certificates = rotatedCertificates(d);
  if (phase === 'trust') {
    commitFileSet(caFiles(d, set), d.layout.k8sdStateDir);
    await until('kube-apiserver to trust the new client CA', TRUST_TIMEOUT_MS, () => apiserverTrustsClientCa(d, server, r.fresh['client-ca']));
    return 'CA bundles hold the old and the new CAs; kube-apiserver accepts clients of the new client CA';
  }
  if (phase === 'reissue') {
    commitFileSet(caFiles(d, set), d.layout.k8sdStateDir);
    const refreshed = await refreshControlPlane(d, { certificates, cas: set });
    const newCa = d.crypto.parseCertificate(r.fresh.ca.cert).subject.commonName;
    await until('kube-apiserver to serve its certificate from the new CA', TRUST_TIMEOUT_MS, async () => (await servedIssuer(server)) === newCa);
    return `re-issued ${certificates.length} certificates and kubeconfigs; kube-apiserver serves a certificate of ${newCa}${restartedNote(refreshed.restarted)}`;
  }
  // Kubeconfigs and the apiserver chain drop the old CA; leaves keep their new issuer.
  const refreshed = await refreshControlPlane(d, { certificates, cas: set });
  commitFileSet(caFiles(d, set), d.layout.k8sdStateDir);
  return `the old CAs left every bundle and kubeconfig${restartedNote(refreshed.restarted)}`;
}

function restartedNote(restarted: string[]): string {
  return restarted.length ? `; restarted ${restarted.join(', ')}` : '';
}

/** One phase on this worker node; returns what it did, for the CLI. */
export async function applyOnWorker(d: NodeContext, renewWorker: RenewWorkerCertificates, phase: CaRotationPhase, input: WorkerPhaseInput): Promise<string> {
  const node = d.node();
  if (!node || node.role !== 'worker') throw new ApiError(409, 'this is not a worker node');
  const l = d.layout;
  const files: FileSpec[] = [
    { path: l.pki('ca.crt'), content: input.caCert, mode: 0o644 },
    { path: l.pki('client-ca.crt'), content: input.clientCaCert, mode: 0o644 },
  ];
  // In the reissue phase the renewal below writes the kubeconfigs, with new client certificates.
  if (phase !== 'reissue') {
    for (const name of WORKER_CLIENT_CERTS) {
      const file = l.kubeconfig(name);
      if (!existsSync(file)) continue;
      const creds = readCreds(file);
      files.push(...kubeconfigFiles(l, name, creds.server, [input.caCert], creds.cert, creds.key));
    }
  }
  const changed = files.filter((f) => !existsSync(f.path) || readFileSync(f.path, 'utf8') !== f.content);
  if (changed.length) commitFileSet(changed, l.k8sdStateDir);
  if (phase === 'reissue') {
    const renewed = await renewWorker([...WORKER_CLIENT_CERTS, 'kubelet']);
    const issuer = input.servingIssuer;
    if (issuer) await until(`the kubelet's new serving certificate from ${issuer}`, SERVING_TIMEOUT_MS, async () => servingCertIssuer(d) === issuer);
    return `new kubelet and kube-proxy client certificates and a kubelet serving certificate of ${issuer ?? 'the new CA'}${restartedNote(renewed.restarted)}`;
  }
  // The kubelet and kube-proxy read their kubeconfig once, at start. (The kubelet re-reads its client CA file by itself.)
  const restart: ServiceId[] = [];
  if (changed.some((f) => f.path === l.kubeconfig('kubelet.conf'))) restart.push('kubelet');
  if (changed.some((f) => f.path === l.kubeconfig('proxy.conf'))) restart.push('kube-proxy');
  if (changed.some((f) => f.path === l.kubeconfig('flannel.conf')) && existsSync(l.args('flanneld'))) restart.push('flanneld');
  for (const s of restart) await d.host.services.restart(s);
  const what = phase === 'trust' ? 'CA bundles and kubeconfigs trust the old and the new CAs' : 'the old CAs left the CA bundles and kubeconfigs';
  return `${changed.length ? what : 'nothing to change'}${restartedNote(restart)}`;
}

function servingCertIssuer(d: Pick<NodeContext, 'layout' | 'crypto'>): string | undefined {
  const file = kubeletServingCertPath(d.layout);
  if (!existsSync(file)) return undefined;
  return d.crypto.parseCertificate(firstPem(readFileSync(file, 'utf8'))).issuer.commonName;
}
