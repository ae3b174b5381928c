// A worker's certificates, renewed through the control plane: for refresh-certs and automatic
// renewal on workers (the certificates module receives renewWorkerCertificates through modules.ts).
import { existsSync } from 'node:fs';
import { commitFileSet, FileSpec } from '../../host/files.js';
import { kubeconfigFiles } from '../../pki/signer.js';
import { reloadingKubeconfigs } from '../certs/inventory.js';
import { ServiceId } from '../../services/specs.js';
import { dropKubeletServingCert } from '../../services/worker-specs.js';
import type { NodeContext } from '../node-context.js';
import { ApiError } from '../http.js';
import { peer } from '../../api/index.js';
import { WORKER_CLIENT_CERTS, WorkerClientCert, workerClientSubject } from './join-messages.js';
import { PeerIdentity, peerRequest, peerTarget, PeerRecord, readPeers } from '../cluster/peer.js';

/** A node's certificate and key, for its calls to peers. */
export function peerIdentityOf(d: Pick<NodeContext, 'identity'>): PeerIdentity {
  return { cert: d.identity.cert, key: d.identity.key };
}

/** Certificates renewWorkerCertificates can renew: the two client kubeconfigs and the kubelet serving certificate. */
export type WorkerCertificate = WorkerClientCert | 'kubelet';

/**
 * Renews a worker's certificates: new keys and CSRs for the client certificates (kubelet.conf,
 * proxy.conf), signed by a control-plane k8sd over mTLS; for the kubelet serving certificate,
 * a fresh kubernetes.io/kubelet-serving CSR (the kubelet makes it when its current one is gone).
 * Restarts only the services whose certificates changed. For the certificates work (refresh-certs
 * and automatic renewal on workers).
 */
export async function renewWorkerCertificates(d: NodeContext, names: WorkerCertificate[]): Promise<{ renewed: WorkerCertificate[]; restarted: ServiceId[] }> {
  const node = d.node();
  if (!node || node.role !== 'worker') throw new ApiError(409, 'renewWorkerCertificates runs on a worker node');
  const l = d.layout;
  const clientCerts = WORKER_CLIENT_CERTS.filter((c) => names.includes(c));
  const restarted = new Set<ServiceId>();
  if (clientCerts.length) {
    const keys: Partial<Record<WorkerClientCert, string>> = {};
    const csrs: Partial<Record<WorkerClientCert, string>> = {};
    for (const c of clientCerts) {
      const kp = await d.crypto.generateKeyPair('ecdsa-p256');
      keys[c] = kp.privateKeyPem;
      csrs[c] = await d.crypto.createCsr(workerClientSubject(c, node.name), kp);
    }
    const cps = readPeers(l).filter((p: PeerRecord) => p.role === 'control-plane');
    let reply: { certificates: Partial<Record<WorkerClientCert, string>>; caCert: string } | undefined;
    let last: Error | undefined;
    for (const p of cps) {
      try {
        reply = await peerRequest(peerIdentityOf(d), peerTarget(p), 'POST', peer.memberCertificates.path, { name: node.name, csrs }, 30_000);
        break;
      } catch (err) {
        last = err as Error;
      }
    }
    if (!reply) throw new ApiError(503, `no control-plane node signed the renewed certificates: ${last?.message ?? 'none is known'}`);
    const server = `https://127.0.0.1:${node.securePort}`;
    // Decided before the write: a client that reloads its certificate files restarts only when its
    // kubeconfig changes too or its current certificate is about to expire.
    const files: FileSpec[] = clientCerts.flatMap((c) => kubeconfigFiles(l, c, server, [reply.caCert], reply.certificates[c]!, keys[c]!));
    const reloading = reloadingKubeconfigs(l, d.crypto, clientCerts, files);
    const mustRestart = clientCerts.filter((c) => !reloading.has(c));
    commitFileSet(files, l.k8sdStateDir);
    if (mustRestart.includes('kubelet.conf')) restarted.add('kubelet');
    if (mustRestart.includes('proxy.conf')) restarted.add('kube-proxy');
    if (mustRestart.includes('flannel.conf') && existsSync(l.args('flanneld'))) restarted.add('flanneld');
  }
  if (names.includes('kubelet')) {
    // With serverTLSBootstrap the kubelet requests a new serving certificate when it has none.
    dropKubeletServingCert(l);
    restarted.add('kubelet');
  }
  for (const svc of restarted) await d.host.services.restart(svc);
  d.log.info('renewed worker certificates', { certificates: names, restarted: [...restarted] });
  return { renewed: names, restarted: [...restarted] };
}

