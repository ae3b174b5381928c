// Membership: join tokens, control-plane and worker joins, node removal, the worker node
// components, and the controllers that keep membership facts current (peers, API server
// endpoints, pod network config, kubelet serving certificates).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalNodeState } from '../../datastore/state.js';
import { commitFileSet, FileSpec, writeFileAtomic } from '../../host/files.js';
import { kubeconfigFiles } from '../../pki/signer.js';
import { reloadingKubeconfigs } from '../certs/inventory.js';
import { ServiceId } from '../../services/specs.js';
import { apiserverProxyEndpointsPath, CNI_NETWORK_NAME, cniConflistPath, dropKubeletServingCert, renderApiserverProxyEndpoints, renderCniConflist } from '../../services/worker-specs.js';
import type { Logger } from '../../log.js';
import type { NodeContext } from '../node-context.js';
import type { MembershipContext, MembershipNode } from './context.js';
import { at, ApiError } from '../http.js';
import { local, peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { KubeletServingSigner } from './csr-signer.js';
import { apiStatus, kubeClients, mergePatchOptions } from './kube-clients.js';
import { handleJoinCluster } from './join-flow.js';
import { controlPlanePeers, joinServerRoutes, MembersReply, WORKER_CLIENT_CERTS, WorkerClientCert, workerClientSubject } from './join-server.js';
import { startNodeComponents } from './node-components.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { PeerIdentity, peerRequest, peerTarget, PeerRecord, readPeers, writePeers } from '../cluster/peer.js';
import { removeRoutes } from './remove.js';
import { registerSecurityJoinPayloads } from './security-join.js';
import { registerPkiKeyJoinPayload } from './pki-key-join.js';
import { MembershipStore } from './store.js';
import { flannelMtu, syncNodeFeatures } from '../features/node.js';
import { claimFirstPodCidrs, podCidrsOf } from './first-pod-cidr.js';
import { purgeExpiredTokens, tokenRoutes } from './tokens-api.js';

const SYNC_INTERVAL_MS = 15_000;

export class Membership implements MembershipContext {
  leaving = false;
  private timers: NodeJS.Timeout[] = [];
  private signer?: KubeletServingSigner;
  private lastSyncError = '';

  constructor(readonly d: MembershipNode) {}

  get log(): Logger {
    return this.d.log;
  }

  store(): MembershipStore {
    if (!this.d.state) throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status"');
    return new MembershipStore(this.d.state);
  }

  peerIdentity(): PeerIdentity {
    return peerIdentityOf(this.d);
  }

  /** Control plane: peers.json from the node records. */
  async refreshPeers(): Promise<void> {
    const node = this.d.node();
    if (!node || node.role !== 'control-plane' || !this.d.state) return;
    const peers = await controlPlanePeers(this, this.store());
    if (!peers.some((p) => p.name === node.name)) {
      peers.push({ name: node.name, address: node.address, role: 'control-plane', fingerprint: this.d.identity.fingerprint, clusterPort: K8SD_CLUSTER_PORT });
    }
    writePeers(this.d.layout, peers);
  }

  async onClustered(node: LocalNodeState): Promise<void> {
    this.stopControllers();
    if (node.role === 'worker') {
      const kubelet = await this.d.host.services.status('kubelet');
      if (kubelet.state !== 'running' && kubelet.state !== 'starting') await startNodeComponents(this.d.host, this.log, 'worker', 120_000);
      this.every(SYNC_INTERVAL_MS, () => this.syncWorker());
      void this.syncWorker();
      this.untilPodNetwork();
      return;
    }
    this.signer = new KubeletServingSigner(this);
    this.signer.start();
    // Control-plane nodes are nodes too (installed with bootstrap or join; restarted here).
    if (existsSync(this.d.layout.args('kubelet'))) {
      const kubelet = await this.d.host.services.status('kubelet');
      if (kubelet.state !== 'running' && kubelet.state !== 'starting') {
        await startNodeComponents(this.d.host, this.log, 'control-plane', 120_000).catch((err: Error) => this.log.error('could not start the node components', { error: err.message }));
      }
    }
    this.every(SYNC_INTERVAL_MS, () => this.syncControlPlane());
    await this.syncControlPlane();
    this.untilPodNetwork();
  }

  /**
   * Until the pod network config is written, retry every second rather than every sync: the node
   * turns Ready (and a fresh cluster usable) as soon as its pod CIDR and flanneld's subnet are known.
   */
  private untilPodNetwork(): void {
    const file = cniConflistPath(this.d.layout);
    const controlPlane = this.d.node()?.role === 'control-plane';
    let labelled = !controlPlane;
    let firstPodCidr = !controlPlane;
    if (existsSync(file) && labelled) return;
    const deadline = Date.now() + 10 * 60_000;
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      if ((existsSync(file) && labelled) || Date.now() > deadline) {
        clearInterval(timer);
        return;
      }
      running = true;
      void (async () => {
        if (!firstPodCidr) firstPodCidr = await this.claimFirstPodCidr().catch(() => false);
        await this.writePodNetworkConfig();
        if (controlPlane) labelled = await this.labelNodes();
      })()
        .catch(() => undefined)
        .finally(() => (running = false));
    }, 1000);
    this.timers.push(timer);
  }

  /** On a fresh cluster's only node: its pod CIDR, without waiting for the controller manager (first-pod-cidr.ts). True once settled. */
  private async claimFirstPodCidr(): Promise<boolean> {
    const node = this.d.node();
    const admin = this.d.layout.kubeconfig('admin.conf');
    const config = await this.d.state?.getConfig();
    if (!node || !config || !existsSync(admin)) return false;
    if ((await this.store().members()).length > 1) return true;
    const claim = await claimFirstPodCidrs((await kubeClients(admin)).core, node.name, config.podCidr);
    if (claim.outcome === 'assigned') this.log.info('gave the first node its pod CIDR', { node: node.name, podCidrs: claim.podCidrs });
    return claim.outcome !== 'pending';
  }

  private every(ms: number, f: () => Promise<void>): void {
    let running = false;
    this.timers.push(
      setInterval(() => {
        if (running) return;
        running = true;
        void f().finally(() => (running = false));
      }, ms),
    );
  }

  stopControllers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.signer?.stop();
    this.signer = undefined;
  }

  private async syncControlPlane(): Promise<void> {
    try {
      await this.refreshPeers();
      await purgeExpiredTokens(this);
      await this.labelNodes();
    } catch (err) {
      this.noteSyncError(err as Error);
    }
    await this.writePodNetworkConfig().catch((err: Error) => this.noteSyncError(err));
  }

  /** Adds node-role.kubernetes.io/<role> to registered nodes (kubelets may not set it themselves); true once every member is labelled. */
  private async labelNodes(): Promise<boolean> {
    const admin = this.d.layout.kubeconfig('admin.conf');
    if (!existsSync(admin)) return false;
    const records = await this.store().members();
    const api = (await kubeClients(admin)).core;
    let all = true;
    for (const rec of records) {
      const label = `node-role.kubernetes.io/${rec.role}`;
      try {
        const node = await api.readNode({ name: rec.name });
        if (node.metadata?.labels?.[label] !== undefined) continue;
        await api.patchNode({ name: rec.name, body: { metadata: { labels: { [label]: '' } } } }, await mergePatchOptions());
        this.log.info('labelled node', { node: rec.name, label });
      } catch (err) {
        if (apiStatus(err) !== 404) throw err;
        all = false;
      }
    }
    return all;
  }

  private noteSyncError(err: Error): void {
    if (err.message !== this.lastSyncError) this.log.warn('membership sync failed; retrying', { error: err.message });
    this.lastSyncError = err.message;
  }

  /** Asks a control-plane node for the current members, trying each known one. */
  async fetchMembers(): Promise<MembersReply> {
    const cps = readPeers(this.d.layout).filter((p) => p.role === 'control-plane');
    if (!cps.length) throw new Error('no control-plane node is known (peers.json is empty); re-join this node');
    const start = Math.floor(Math.random() * cps.length);
    let last: Error | undefined;
    for (const p of [...cps.slice(start), ...cps.slice(0, start)]) {
      try {
        return await peerRequest<MembersReply>(this.peerIdentity(), peerTarget(p), 'GET', peer.members.path, undefined, 10_000);
      } catch (err) {
        last = err as Error;
      }
    }
    throw last ?? new Error('no control-plane node answered');
  }

  /** Worker: control-plane members and API server endpoints from the cluster; pod network config from the Node. */
  async syncWorker(): Promise<void> {
    const l = this.d.layout;
    try {
      const reply = await this.fetchMembers();
      if (reply.members.length) writePeers(l, reply.members);
      const endpoints = renderApiserverProxyEndpoints(reply.apiservers);
      const file = apiserverProxyEndpointsPath(l);
      if (reply.apiservers.length && (!existsSync(file) || readFileSync(file, 'utf8') !== endpoints)) {
        writeFileAtomic(file, endpoints, 0o644);
        this.log.info('updated the API server endpoints of k8s-apiserver-proxy', { endpoints: reply.apiservers });
      }
      const node = this.d.node();
      if (reply.features && node) await syncNodeFeatures(this.d.host, this.log, node, reply.features);
      this.lastSyncError = '';
    } catch (err) {
      this.noteSyncError(err as Error);
    }
    await this.writePodNetworkConfig().catch((err: Error) => this.noteSyncError(err));
  }

  /**
   * CIS 1.1.9: every CNI file 600. host-local creates its lock file 0750; the plugin only opens it
   * later, so tightening the mode once it exists is enough.
   */
  private tightenCniFiles(): void {
    const dir = path.join(this.d.layout.cniStateDir, 'networks');
    // Created here first, 0600, so that host-local only ever opens it.
    const own = path.join(dir, CNI_NETWORK_NAME);
    if (!existsSync(path.join(own, 'lock'))) {
      mkdirSync(own, { recursive: true, mode: 0o700 });
      writeFileSync(path.join(own, 'lock'), '', { mode: 0o600 });
    }
    for (const net of readdirSync(dir)) {
      const lock = path.join(dir, net, 'lock');
      try {
        if ((statSync(lock).mode & 0o777) !== 0o600) chmodSync(lock, 0o600);
      } catch {
        // no lock file (yet)
      }
    }
  }

  /** Writes the bridge CNI config once the controller manager has given this node its pod CIDR. */
  async writePodNetworkConfig(): Promise<boolean> {
    this.tightenCniFiles();
    const node = this.d.node();
    const l = this.d.layout;
    if (!node || !existsSync(l.kubeconfig('kubelet.conf'))) return false;
    let cidrs: string[];
    try {
      const n = await (await kubeClients(l.kubeconfig('kubelet.conf'))).core.readNode({ name: node.name });
      cidrs = podCidrsOf(n);
    } catch (err) {
      if (apiStatus(err) === 404) return false;
      throw err;
    }
    if (!cidrs.length) return false;
    // With the network feature, wait for flanneld's subnet file: pods need its MTU from the start.
    const network = existsSync(l.args('flanneld'));
    const mtu = network ? flannelMtu(l.flannelSubnetFile) : undefined;
    if (network && !mtu) return false;
    const text = renderCniConflist(l, cidrs, { network, ...(mtu ? { mtu } : {}) });
    const file = cniConflistPath(l);
    if (existsSync(file) && readFileSync(file, 'utf8') === text) return false;
    // CIS 1.1.9/1.1.10: CNI files 600, root:root.
    writeFileAtomic(file, text, 0o600);
    this.log.info('wrote the pod network config', { file, podCidrs: cidrs });
    return true;
  }

  async stop(): Promise<void> {
    this.stopControllers();
  }
}

/** A node's certificate and key, for its calls to peers. */
function peerIdentityOf(d: Pick<NodeContext, 'identity'>): PeerIdentity {
  return { cert: d.identity.cert, key: d.identity.key };
}

export function registerMembership(d: MembershipNode): Membership {
  const m = new Membership(d);
  const removal = removeRoutes(m);
  d.extraLocalRoutes.push(
    ...tokenRoutes(m),
    { ...at(local.join), handler: (req, res) => handleJoinCluster(m, req, res) },
    ...removal.local,
    {
      // Workers: renew certificates through the control plane (for refresh-certs and automatic renewal).
      ...at(local.renewWorkerCertificates),
      handler: async (req) => {
        const wanted = parseRequest(local.renewWorkerCertificates, req.body).certificates ?? [...WORKER_CLIENT_CERTS, 'kubelet'];
        const valid: WorkerCertificate[] = [...WORKER_CLIENT_CERTS, 'kubelet'];
        if (!Array.isArray(wanted) || !wanted.length || !wanted.every((c) => valid.includes(c as WorkerCertificate))) {
          throw new ApiError(400, `certificates must be a list of ${valid.join(', ')}`);
        }
        return renewWorkerCertificates(d, wanted as WorkerCertificate[]);
      },
    },
  );
  d.extraClusterRoutes.push(...joinServerRoutes(m), ...removal.cluster);
  d.onClustered.push((node) => m.onClustered(node));
  d.onStop.push(() => m.stop());
  registerSecurityJoinPayloads(d);
  registerPkiKeyJoinPayload(d);
  return m;
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

