// k8sd: the daemon. Serves the local API on a root-only unix socket and the cluster
// API on HTTPS :6400 with mutual TLS; starts and supervises this node's services.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { ServerResponse } from 'node:http';
import { defaultNodeAddress, isLoopback } from '../config/net.js';
import { isIP } from 'node:net';
import { CryptoBackend } from '../crypto/types.js';
import { EtcdClient } from '../datastore/etcd.js';
import { ClusterState, LocalNodeState, readLocalNode } from '../datastore/state.js';
import { recoverFileSets, writeFileAtomic } from '../host/files.js';
import { Host, localHost } from '../services/host.js';
import { Layout } from '../layout.js';
import { installAdvice } from '../install.js';
import { createLogger, Logger } from '../log.js';
import { processRunning, ServiceStatus } from '../services/manager.js';
import { localAddress, ServiceId } from '../services/specs.js';
import { servicesFor } from '../services/registry.js';
import { crashWatch, etcdClientUrl, k8sdEtcdTlsFiles, startKubernetesControlPlane, waitEtcdHealthy } from './controlplane.js';
import { bootstrap, SecurityProvider, AlreadyBootstrappedError } from './flows/bootstrap.js';
import { StepEvent } from './flows/flow.js';
import { ApiError, makeDispatcher, Request, Route } from './http.js';
import type { local, ParsedRequestOf } from '../api/index.js';
import { ClusterIdentity, ensureClusterIdentity } from './identity.js';
import { NodeOperationLock } from './node-lock.js';
import { TrustedPeers } from './trusted-peers.js';
import { trustedPeerSources } from './cluster/peer-auth.js';
import { serverTlsOptions } from './tls.js';
import { createCryptoBackend, fipsMode } from './runtime.js';
import { FipsMode } from '../crypto/fips.js';
import { PkiWrappingKeyFile } from '../pki/key-wrap.js';
import { createSecurityProvider, registerSecretsEncryption } from './security.js';
import { registerModules } from './modules.js';
import { readWeakenedFlags, warnWeakenedFlags } from './overrides.js';
import { K8SD_CLUSTER_PORT } from './cluster/port.js';
import { streamProgress } from './cluster/progress.js';
import { nodeInfoRoute } from './routes/node/node-info.js';
import { bootstrapRoute } from './routes/node/bootstrap.js';
import { clusterStatusRoute } from './routes/node/cluster-status.js';
import { kubeconfigRoute } from './routes/node/kubeconfig.js';
import { servicesRoute } from './routes/node/services.js';
import { datastoreRoute } from './routes/node/datastore.js';
import { nodeIdentityRoute } from './routes/peer/node-identity.js';


/**
 * How long a caller of the cluster API may take, so that slow or idle connections cannot pile up:
 * the TLS handshake, the request headers, the whole request (the reply may take longer: a join
 * waits for etcd), and an idle kept-alive connection. Node checks them every second.
 */
export const CLUSTER_API_TIMEOUTS = {
  handshakeTimeout: 10_000,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000,
} as const;
/** Open connections to the cluster API at once; more are dropped on accept. */
export const CLUSTER_API_MAX_CONNECTIONS = 1024;

export interface DaemonOptions {
  layout?: Layout;
  log?: Logger;
}

export class K8sd {
  readonly layout: Layout;
  readonly log: Logger;
  readonly host: Host;
  crypto!: CryptoBackend;
  fips: FipsMode = { enabled: false, request: { requested: false, requestedBy: [] } };
  identity!: ClusterIdentity;
  security!: SecurityProvider;
  etcd?: EtcdClient;
  state?: ClusterState;
  /** Control-plane nodes: the key that wraps CA keys in the datastore. */
  readonly pkiKeys: PkiWrappingKeyFile;
  /** Fingerprints of the members' cluster certificates, for authorizing cluster-API callers. */
  readonly trustedPeers: TrustedPeers;
  private localServer?: http.Server;
  private clusterServer?: https.Server;
  /** Serialises the operations that change what this node is (bootstrap, join, removal, restore, rotations). */
  readonly lock = new NodeOperationLock();
  /** Settles when start-up has finished bringing up this node's services (a restore waits for it). */
  nodeServicesSettled: Promise<void> = Promise.resolve();
  /** clustered() has run: the cluster API is up and the onClustered hooks ran. */
  isClustered = false;
  private stopping = false;

  constructor(opts: DaemonOptions = {}) {
    this.layout = opts.layout ?? new Layout();
    this.log = opts.log ?? createLogger('k8sd', this.layout.log('k8sd'));
    this.host = localHost(this.layout, this.log);
    this.pkiKeys = new PkiWrappingKeyFile(this.layout.pkiWrappingKeyFile, () => this.crypto);
    this.trustedPeers = new TrustedPeers(trustedPeerSources(this));
  }

  node(): LocalNodeState | undefined {
    return readLocalNode(this.layout);
  }

  async start(): Promise<void> {
    const l = this.layout;
    mkdirSync(l.k8sdStateDir, { recursive: true, mode: 0o700 });
    chmodSync(l.k8sdStateDir, 0o700);
    const recovered = recoverFileSets(l.k8sdStateDir);
    if (recovered) this.log.warn('completed interrupted file-set writes', { count: recovered });
    this.fips = await fipsMode(l);
    if (this.fips.enabled) {
      // The Go components must carry the FIPS module (checked before each start: services/binaries.ts).
      l.fipsMode = true;
      this.log.info('FIPS mode', { requestedBy: this.fips.request.requestedBy, provider: `${this.fips.provider.name} ${this.fips.provider.version}`, goFips140: l.goFips140 ?? 'none' });
    }
    this.crypto = createCryptoBackend(this.fips, this.log);
    this.identity = await ensureClusterIdentity(l, this.crypto, this.host.hostname(), [this.host.defaultAddress()]);
    const security = createSecurityProvider(this);
    this.security = security;
    registerSecretsEncryption(this, security.manager);
    registerModules(this);
    // One k8sd per root: a second one would reap the first one's services as stale.
    const other = runningK8sd(l.k8sdPidFile);
    if (other) throw new Error(`another k8sd (pid ${other}) is already running with this K8S_ROOT (${l.root}); stop it first (${installAdvice(l).stopK8sd})`);
    // The pid file comes first, so that `npm stop` during the (slow) reaping below finds this k8sd.
    writeFileAtomic(l.k8sdPidFile, `${process.pid}\n`, 0o644);
    await this.host.services.reapStale();
    await this.startLocalApi();
    const node = this.node();
    if (node) {
      warnWeakenedFlags(this.log, readWeakenedFlags(l), 'start');
      try {
        const starting = this.startNodeServices(node);
        this.nodeServicesSettled = starting.then(() => undefined, () => undefined);
        await starting;
      } catch (err) {
        this.log.error('could not start the node services; k8sd keeps serving so that status shows why', { error: (err as Error).message });
      }
    }
    this.log.info('k8sd started', { socket: l.controlSocket, clustered: Boolean(node) });
  }

  /** Brings up the services of a node that is already part of a cluster (after a restart). */
  private async startNodeServices(node: LocalNodeState): Promise<void> {
    // Workers have no datastore: their services start in the membership module's onClustered hook.
    if (node.role !== 'control-plane') return this.clustered(node);
    const l = this.layout;
    const managedEtcd = existsSync(l.args('etcd'));
    if (managedEtcd) await this.host.services.start('etcd');
    const etcd = this.adoptDatastore(EtcdClient.fromFiles(node.etcdEndpoints, k8sdEtcdTlsFiles(l, managedEtcd)));
    await waitEtcdHealthy(etcd, 60_000, crashWatch(this.host, 'etcd', l.log('etcd')));
    await this.wrapPlaintextPki();
    const config = await this.state!.getConfig();
    if (!config) throw new Error('the datastore holds no cluster configuration');
    await this.security.beforeApiserver(config);
    await startKubernetesControlPlane(this.host, 120_000);
    await this.clustered(node);
  }

  /** A cluster from before key wrapping keeps its CA keys in etcd in the clear: wrap them now (see src/pki/key-wrap.ts). */
  private async wrapPlaintextPki(): Promise<void> {
    try {
      const migrated = await this.state!.wrapPlaintextKeys();
      if (migrated.length) this.log.warn('wrapped CA keys that the datastore held in plaintext', { records: migrated, wrappingKey: this.pkiKeys.file });
    } catch (err) {
      // The control plane still starts (its keys are on disk); what needs the CA keys fails with this message.
      this.log.error('could not wrap the CA keys held in the datastore', { error: (err as Error).message });
    }
  }

  /** Re-opens the datastore client with the certificate files on disk (after they were renewed). */
  async reconnectDatastore(): Promise<void> {
    const node = this.node();
    if (!node || !this.etcd) return;
    const old = this.etcd;
    this.adoptDatastore(EtcdClient.fromFiles(node.etcdEndpoints, k8sdEtcdTlsFiles(this.layout, existsSync(this.layout.args('etcd')))));
    old.close();
  }

  /**
   * The one place the node's datastore is set: at start, after bootstrap or a join, and when its
   * client certificates are renewed. Modules read `etcd` and `state` (readonly in their contexts)
   * and call this or forgetDatastore; they never assign them.
   */
  adoptDatastore(etcd: EtcdClient): EtcdClient {
    this.etcd = etcd;
    this.state = new ClusterState(etcd, this.pkiKeys);
    return etcd;
  }

  /** The node left its cluster: closes and drops the datastore client. */
  forgetDatastore(): void {
    this.etcd?.close();
    this.etcd = undefined;
    this.state = undefined;
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('k8sd stopping');
    for (const f of this.onStop) await f().catch((err: Error) => this.log.warn('stop hook failed', { error: err.message }));
    this.clusterServer?.close();
    this.localServer?.close();
    await this.host.services.stopAll();
    await this.security?.stop();
    this.etcd?.close();
    rmSync(this.layout.controlSocket, { force: true });
    rmSync(this.layout.k8sdPidFile, { force: true });
    this.log.info('k8sd stopped');
  }

  /** Extension points: modules (membership, certificates, ...) register routes and controllers here. */
  readonly extraLocalRoutes: Route[] = [];
  readonly extraClusterRoutes: Route[] = [];
  /** Called once the node is clustered and its datastore is connected (at start-up and after bootstrap/join). */
  readonly onClustered: Array<(node: LocalNodeState) => Promise<void>> = [];
  /** Called on shutdown, before services stop. */
  readonly onStop: Array<() => Promise<void>> = [];

  private routes(): Route[] {
    return [
      ...this.extraLocalRoutes,
      nodeInfoRoute(this),
      bootstrapRoute(this),
      clusterStatusRoute(this),
      kubeconfigRoute(this),
      servicesRoute(this),
      datastoreRoute(this),
    ];
  }

  requireControlPlane(): LocalNodeState {
    const node = this.node();
    if (!node) throw new ApiError(409, 'this node is not part of a cluster; run "k8s bootstrap" or "k8s join-cluster" first');
    if (node.role !== 'control-plane') throw new ApiError(403, 'this command runs on a control-plane node only');
    return node;
  }

  async serviceStates(): Promise<ServiceStatus[]> {
    const node = this.node();
    const l = this.layout;
    // Node services show once installed (args file written); flanneld while the network feature is on.
    const names: ServiceId[] = node
      ? servicesFor({ role: node.role, managedDatastore: existsSync(l.args('etcd')) })
          .filter((e) => e.tier === 'control-plane' || existsSync(l.args(e.id)))
          .map((e) => e.id)
      : [];
    return Promise.all(names.map((n) => this.host.services.status(n)));
  }

  /** Bootstraps a cluster on this node (routes/node/bootstrap.ts parses the request). */
  async bootstrapCluster(body: ParsedRequestOf<typeof local.bootstrap>, res: ServerResponse): Promise<undefined> {
    const existing = this.node();
    if (existing) throw new ApiError(409, new AlreadyBootstrappedError(existing.name, existing.role).message);
    this.lock.check('bootstrap');
    const { validateBootstrapConfig, parseBootstrapYaml, ConfigError } = await import('../config/bootstrap.js');
    let config;
    try {
      config = typeof body.config === 'string' ? parseBootstrapYaml(body.config) : validateBootstrapConfig(body.config ?? {}, { plain: body.config === undefined });
    } catch (err) {
      if (err instanceof ConfigError) throw new ApiError(400, err.message);
      throw err;
    }
    const name = (body.name || this.host.hostname()).toLowerCase();
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new ApiError(400, `invalid node name "${name}": use lower-case letters, digits, "-" and "."`);
    const address = body.address ? body.address.replace(/\/\d+$/, '') : defaultNodeAddress();
    if (isIP(address) === 0) throw new ApiError(400, `invalid node address "${address}": give an IP address (or CIDR) of this host`);
    if (isLoopback(address)) {
      throw new ApiError(400, `invalid node address "${address}": kube-apiserver cannot advertise a loopback address; give the address of a real interface (--address)`);
    }
    const release = this.lock.acquire('bootstrap');
    try {
      return await streamProgress<StepEvent>(res, this.log, 'bootstrap', async (emit) => {
        const started = Date.now();
        const { etcd } = await bootstrap(
          {
            host: this.host,
            crypto: this.crypto,
            log: this.log,
            identity: this.identity,
            security: this.security,
            fipsEnabled: this.fips.enabled,
            pkiKeys: this.pkiKeys,
          },
          { config, name, address, timeoutMs: (body.timeoutSeconds ?? 120) * 1000 },
          (e) => {
            this.log.info(e.type === 'step' ? `bootstrap: ${e.title}` : `bootstrap: rolled back ${e.step}`, e.type === 'rollback' && e.error ? { error: e.error } : {});
            emit(e);
          },
        );
        this.adoptDatastore(etcd);
        await this.clustered(this.node()!);
        this.log.info('bootstrap complete', { node: name, seconds: (Date.now() - started) / 1000 });
        return { name, address, seconds: (Date.now() - started) / 1000 };
      });
    } finally {
      release();
    }
  }

  private async startLocalApi(): Promise<void> {
    const sock = this.layout.controlSocket;
    rmSync(sock, { force: true });
    const dispatch = makeDispatcher(this.routes(), async () => {}, (err) => this.log.error('local API error', { error: err.message }));
    this.localServer = http.createServer(dispatch);
    this.localServer.requestTimeout = 0; // bootstrap streams for minutes
    await new Promise<void>((resolve, reject) => {
      this.localServer!.once('error', reject);
      // umask so the socket is never briefly world-accessible, then chmod to be explicit.
      const old = process.umask(0o177);
      this.localServer!.listen(sock, () => {
        process.umask(old);
        chmodSync(sock, 0o600);
        resolve();
      });
    });
  }

  /** Runs when the node has a cluster: cluster API up, then every registered onClustered hook. */
  async clustered(node: LocalNodeState): Promise<void> {
    await this.startClusterApi(node);
    for (const f of this.onClustered) {
      await f(node).catch((err: Error) => this.log.error('post-cluster hook failed', { error: err.message }));
    }
    this.isClustered = true;
  }

  private async startClusterApi(node: LocalNodeState): Promise<void> {
    if (this.clusterServer) return;
    const routes: Route[] = [nodeIdentityRoute(node), ...this.extraClusterRoutes];
    // Before any body is read (src/k8sd/http.ts): a member certificate, a control-plane one, or for
    // token-authenticated routes at least a client certificate (joiners present their cluster certificate).
    const authorize = async (route: Route, req: Request): Promise<void> => {
      if (route.caller === 'control-plane') {
        if (!(await this.trustedPeers.isControlPlane(req.peerFingerprint))) throw new ApiError(403, 'only a control-plane member of this node’s cluster may call this');
        return;
      }
      if (route.untrusted) {
        if (!req.peerFingerprint) throw new ApiError(403, 'a TLS client certificate is required (a joining node presents its cluster certificate)');
        return;
      }
      if (!req.peerFingerprint || !this.state) throw new ApiError(403, 'a cluster member certificate is required');
      if (!(await this.trustedPeers.memberRole(req.peerFingerprint))) throw new ApiError(403, 'the client certificate does not belong to a cluster member');
    };
    const dispatch = makeDispatcher(routes, authorize, (err) => this.log.error('cluster API error', { error: err.message }));
    this.clusterServer = https.createServer(
      {
        ...serverTlsOptions(),
        cert: this.identity.cert,
        key: this.identity.key,
        requestCert: true,
        rejectUnauthorized: false,
        ...CLUSTER_API_TIMEOUTS,
      },
      dispatch,
    );
    this.clusterServer.maxConnections = CLUSTER_API_MAX_CONNECTIONS;
    const bind = localAddress({ nodeAddress: node.address }) === '127.0.0.1' ? node.address : node.address;
    await new Promise<void>((resolve, reject) => {
      this.clusterServer!.once('error', reject);
      this.clusterServer!.listen(K8SD_CLUSTER_PORT, bind, () => resolve());
    });
    this.log.info('cluster API listening', { address: `${bind}:${K8SD_CLUSTER_PORT}` });
  }
}

export { etcdClientUrl };

/** The pid of a live k8sd recorded in `pidFile`, other than this process (or its FIPS re-exec parent). */
export function runningK8sd(pidFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || pid === process.ppid) return undefined;
  try {
    if (!processRunning(pid)) return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /k8sd\/main\.js/.test(cmdline) ? pid : undefined;
  } catch {
    return undefined;
  }
}
