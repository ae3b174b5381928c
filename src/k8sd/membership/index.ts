// Membership: join tokens, control-plane and worker joins, node removal, the worker node
// components, and the controllers that keep membership facts current (peers, API server
// endpoints, pod network config, kubelet serving certificates).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalNodeState } from '../../datastore/state.js';
import { writeFileAtomic } from '../../host/files.js';
import { apiserverProxyEndpointsPath, CNI_NETWORK_NAME, cniConflistPath, renderApiserverProxyEndpoints, podNetworkConflist } from '../../services/worker-specs.js';
import type { Logger } from '../../log.js';
import type { MembershipContext, MembershipNode } from './context.js';
import { ApiError } from '../http.js';
import { peer } from '../../api/index.js';
import { KubeletServingSigner } from './csr-signer.js';
import { apiStatus, kubeClients, mergePatchOptions } from './kube-clients.js';
import { controlPlanePeers, MembersReply } from './join-server.js';
import { startNodeComponents } from './node-components.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { PeerIdentity, peerRequest, peerTarget, readPeers, writePeers } from '../cluster/peer.js';
import { registerSecurityJoinPayloads } from './security-join.js';
import { registerPkiKeyJoinPayload } from './pki-key-join.js';
import { MembershipStore } from './store.js';
import { flannelMtu, syncNodeFeatures } from '../features/node.js';
import { claimFirstPodCidrs, podCidrsOf } from './first-pod-cidr.js';
import { purgeExpiredTokens } from './tokens-api.js';
import { peerIdentityOf } from './worker-certificates.js';
import { issueTokenRoute } from '../routes/membership/issue-token.js';
import { listTokensRoute } from '../routes/membership/list-tokens.js';
import { revokeTokenRoute } from '../routes/membership/revoke-token.js';
import { joinRoute } from '../routes/membership/join.js';
import { removeNodeRoute } from '../routes/membership/remove-node.js';
import { renewWorkerCertificatesRoute } from '../routes/membership/renew-worker-certificates.js';
import { memberJoinRoute } from '../routes/peer/member-join.js';
import { memberPromoteRoute } from '../routes/peer/member-promote.js';
import { memberAbortRoute } from '../routes/peer/member-abort.js';
import { membersRoute } from '../routes/peer/members.js';
import { memberCertificatesRoute } from '../routes/peer/member-certificates.js';
import { memberLeaveRoute } from '../routes/peer/member-leave.js';

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
    const text = await podNetworkConflist(l, cidrs, () => flannelMtu(l.flannelSubnetFile));
    if (!text) return false;
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

export function registerMembership(d: MembershipNode): Membership {
  const m = new Membership(d);
  d.extraLocalRoutes.push(issueTokenRoute(m), listTokensRoute(m), revokeTokenRoute(m), joinRoute(m), removeNodeRoute(m), renewWorkerCertificatesRoute(d));
  d.extraClusterRoutes.push(memberJoinRoute(m), memberPromoteRoute(m), memberAbortRoute(m), membersRoute(m), memberCertificatesRoute(m), memberLeaveRoute(m));
  d.onClustered.push((node) => m.onClustered(node));
  d.onStop.push(() => m.stop());
  registerSecurityJoinPayloads(d);
  registerPkiKeyJoinPayload(d);
  return m;
}
