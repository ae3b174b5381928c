// Bootstrap: turn an unclustered node into the first control-plane node.
import { existsSync, rmSync } from 'node:fs';
import { BootstrapConfig } from '../../config/bootstrap.js';
import { CryptoBackend } from '../../crypto/types.js';
import { EtcdClient } from '../../datastore/etcd.js';
import { ClusterConfig, ClusterState, readLocalNode, writeLocalNode, removeLocalNode } from '../../datastore/state.js';
import { commitFileSet, FileSpec, missingDirs, removeEmptyDirs, removeFiles } from '../../host/files.js';
import { Host } from '../../services/host.js';
import { Logger } from '../../log.js';
import { overrideFiles, warnWeakenedFlags } from '../overrides.js';
import { ensureCas, generateServiceAccountKey, issueNodeCertificates, PkiBundle, pkiFiles } from '../../pki/signer.js';
import { CaName } from '../../pki/table.js';
import { PkiKeyWrapper, PkiWrappingKeyFile } from '../../pki/key-wrap.js';
import { Args } from '../../services/args.js';
import { apiServerUrl, BINARIES, localAddress } from '../../services/specs.js';
import { assertComponents } from '../../services/binaries.js';
import {
  controlPlaneArgsFiles,
  controlPlaneServices,
  crashWatch,
  etcdClientUrl,
  etcdPeerUrl,
  k8sdEtcdTlsFiles,
  nodeIdentity,
  serviceContext,
  startKubernetesControlPlane,
  waitEtcdHealthy,
} from '../controlplane.js';
import { ClusterIdentity } from '../identity.js';
import { featuresOf } from '../../datastore/state.js';
import { nthAddress, parseCidrList } from '../../config/net.js';
import { onPath } from '../../host/host.js';
import {
  controlPlaneNodeContext,
  nodeBinaries,
  nodeComponentFiles,
  nodePorts,
  prepareContainerd,
  removeNodeComponents,
  routesTo,
  startNodeServices,
} from '../membership/node-components.js';
import { runFlow, Step, StepEvent } from './flow.js';

/** Security settings turned into files and apiserver flags (audit, admission, encryption at rest). */
export interface SecurityProvider {
  files(config: ClusterConfig): Promise<FileSpec[]>;
  apiserverArgs(config: ClusterConfig): Args;
  /** Starts anything the apiserver needs before it starts (the KMS plugin). */
  beforeApiserver(config: ClusterConfig): Promise<void>;
  stop(): Promise<void>;
}

export interface BootstrapRequest {
  config: BootstrapConfig;
  name: string;
  address: string;
  timeoutMs: number;
}

export interface BootstrapDeps {
  host: Host;
  crypto: CryptoBackend;
  log: Logger;
  identity: ClusterIdentity;
  security: SecurityProvider;
  fipsEnabled: boolean;
  /** Where this node keeps the key that wraps CA keys in the datastore. */
  pkiKeys: PkiWrappingKeyFile;
}

interface Ctx extends BootstrapDeps {
  req: BootstrapRequest;
  cluster: ClusterConfig;
  bundle?: PkiBundle;
  written: string[];
  /** Directories this bootstrap created, removed again on rollback when empty. */
  createdDirs: string[];
  etcd?: EtcdClient;
  deadline: number;
  /** containerd's preparation, started beside the control plane: settles to its error, or null. */
  containerdPrepared?: Promise<Error | null>;
}

export class AlreadyBootstrappedError extends Error {
  constructor(name: string, role: string) {
    super(`this node is already part of a cluster (node "${name}", ${role}); run "k8s status", or remove it first with "k8s remove-node"`);
    this.name = 'AlreadyBootstrappedError';
  }
}

export function clusterConfigFrom(c: BootstrapConfig): ClusterConfig {
  return {
    podCidr: c.podCidrs.map((x) => x.text).join(','),
    serviceCidr: c.serviceCidrs.map((x) => x.text).join(','),
    securePort: c.securePort,
    etcdPort: c.etcdPort,
    etcdPeerPort: c.etcdPeerPort,
    datastoreType: c.datastoreType,
    datastoreServers: c.datastoreServers,
    clusterDomain: c.clusterDomain,
    dnsServiceIp: c.features.dns['service-ip'],
    keyType: c.keyType,
    fips: c.fips,
    failCgroupV1: c.failCgroupV1,
    auditLevel: c.auditLevel,
    podSecurity: c.podSecurity,
    secretsEncryption: c.secretsEncryption,
    extraSans: c.extraSans,
    certificates: c.certificates,
    createdAt: new Date().toISOString(),
    features: c.features,
    controlPlaneTaints: c.controlPlaneTaints,
    etcdSnapshot: c.etcdSnapshot,
  };
}

const remaining = (ctx: Ctx): number => Math.max(1000, ctx.deadline - Date.now());

const steps: Step<Ctx>[] = [
  {
    name: 'preflight',
    title: 'Checking the node',
    async run(ctx) {
      const existing = readLocalNode(ctx.host.layout);
      if (existing) throw new AlreadyBootstrappedError(existing.name, existing.role);
      if (ctx.cluster.fips && !ctx.fipsEnabled) {
        throw new Error('fips: true is set but k8sd is not running in FIPS mode; start k8sd with K8S_FIPS=1 (snap: snap set k8s fips=true) on a host with an active OpenSSL FIPS provider');
      }
      ctx.cluster.fips = ctx.fipsEnabled;
      assertComponents(ctx.host.layout, controlPlaneServices(ctx.cluster).map((s) => [BINARIES[s].component, BINARIES[s].binary] as const));
      assertComponents(ctx.host.layout, nodeBinaries('control-plane', featuresOf(ctx.cluster).network.enabled));
      if (!onPath('iptables')) throw new Error('iptables is not installed; kube-proxy and the CNI plugins need it (apt-get install iptables)');
      const kubernetesService = nthAddress(parseCidrList(ctx.cluster.serviceCidr)[0]!, 1);
      if (featuresOf(ctx.cluster).network.enabled && !(await routesTo(kubernetesService))) {
        throw new Error(`this node has no route to the service CIDR (${kubernetesService}); add a default route (ip route add default via <gateway>), which host-network pods need to reach Services`);
      }
      const addr = ctx.req.address;
      const local = localAddress({ nodeAddress: addr });
      const ports: Array<[string, number, string]> = [
        [addr, ctx.cluster.securePort, 'kube-apiserver'],
        [local, 10257, 'kube-controller-manager'],
        [local, 10259, 'kube-scheduler'],
        ...nodePorts('control-plane', ctx.cluster.securePort),
      ];
      if (ctx.cluster.datastoreType === 'etcd') {
        ports.push([addr, ctx.cluster.etcdPort, 'etcd client'], [addr, ctx.cluster.etcdPeerPort, 'etcd peer'], [local, ctx.cluster.etcdPort, 'etcd client']);
      }
      for (const [a, p, what] of ports) {
        if (!(await ctx.host.portFree(a, p))) throw new Error(`port ${a}:${p} (${what}) is already in use; stop whatever listens there, or pick another port in the bootstrap file`);
      }
      if (existsSync(ctx.host.layout.etcdDataDir)) {
        throw new Error(`${ctx.host.layout.etcdDataDir} already exists from an earlier cluster; remove it to bootstrap a new one`);
      }
    },
  },
  {
    name: 'pki',
    title: 'Generating certificates',
    async run(ctx) {
      const cfg = ctx.req.config;
      const cas = await ensureCas(ctx.crypto, cfg.keyType, {
        ca: cfg.supplied.ca,
        'client-ca': cfg.supplied['client-ca'],
        'front-proxy-ca': cfg.supplied['front-proxy-ca'],
        'etcd-ca': cfg.supplied['etcd-ca'],
        'kubelet-ca': cfg.supplied['kubelet-ca'],
      } as Partial<Record<CaName, { crt?: string; key?: string }>>);
      const node = nodeIdentity(ctx.host, ctx.req, ctx.cluster);
      const { leaves, kubeconfigs } = await issueNodeCertificates(ctx.crypto, cas, node, 'control-plane', { keyType: cfg.keyType, leafLifetimeMs: cfg.certificates.lifetimeMs }, cfg.supplied);
      const serviceAccountKey = cfg.raw['service-account-key'] ?? (await generateServiceAccountKey(ctx.crypto, cfg.keyType));
      ctx.bundle = { cas, leaves, kubeconfigs, serviceAccountKey, serviceAccountPub: await ctx.crypto.publicKeyOf(serviceAccountKey) };
    },
  },
  {
    name: 'write-config',
    title: 'Writing certificates, kubeconfigs and service arguments',
    async run(ctx) {
      const { host, req, cluster } = ctx;
      const server = apiServerUrl({ nodeAddress: req.address, securePort: cluster.securePort });
      const sctx = serviceContext(
        host,
        req,
        cluster,
        { initialCluster: `${req.name}=${etcdPeerUrl(req.address, cluster.etcdPeerPort)}`, state: 'new' },
        ctx.security.apiserverArgs(cluster),
      );
      const files = [
        ...pkiFiles(host.layout, ctx.bundle!, server, 'control-plane'),
        ...(await ctx.security.files(cluster)),
        ...controlPlaneArgsFiles(host, sctx, controlPlaneServices(cluster), req.config.extraArgs),
        ...nodeComponentFiles(controlPlaneNodeContext(host.layout, req, cluster), req.config.extraArgs, req.config.raw['extra-node-containerd-config'] ?? {}),
        ...overrideFiles(host.layout, req.config.weakened, req.config.configFiles),
      ];
      warnWeakenedFlags(ctx.log, req.config.weakened, 'bootstrap');
      const b = ctx.bundle!;
      const external = [...Object.entries(b.leaves), ...Object.entries(b.kubeconfigs)].filter(([, c]) => c.external).map(([n]) => n);
      const externalCas = Object.entries(b.cas).filter(([, ca]) => !ca.key).map(([n]) => n);
      files.push({ path: host.layout.externalCertsFile, content: JSON.stringify({ certificates: external, cas: externalCas }) + '\n', mode: 0o600 });
      if (cluster.datastoreType === 'external') {
        const raw = req.config.raw;
        files.push(
          { path: host.layout.pki('etcd/ca.crt'), content: raw['datastore-ca-crt']!, mode: 0o644 },
          { path: host.layout.pki('apiserver-etcd-client.crt'), content: raw['datastore-client-crt']!, mode: 0o644 },
          { path: host.layout.pki('apiserver-etcd-client.key'), content: raw['datastore-client-key']!, mode: 0o600 },
        );
      }
      ctx.written = files.map((f) => f.path);
      // Also the directories services create when they start (run/, etcd data, logs are volatile).
      ctx.createdDirs = missingDirs([...ctx.written, `${host.layout.runDir}/x`, `${host.layout.etcdDataDir}/x`]);
      commitFileSet(files, host.layout.k8sdStateDir);
    },
    async rollback(ctx) {
      removeFiles(ctx.written);
      removeEmptyDirs(ctx.createdDirs);
    },
  },
  {
    name: 'start-datastore',
    title: 'Starting etcd',
    async run(ctx) {
      const { host, cluster, req } = ctx;
      const l = host.layout;
      const local = localAddress({ nodeAddress: req.address });
      if (cluster.datastoreType === 'etcd') await host.services.start('etcd');
      const endpoints = cluster.datastoreType === 'etcd' ? [etcdClientUrl(local, cluster.etcdPort)] : cluster.datastoreServers;
      ctx.etcd = EtcdClient.fromFiles(endpoints, k8sdEtcdTlsFiles(l, cluster.datastoreType === 'etcd'));
      await waitEtcdHealthy(ctx.etcd, remaining(ctx), crashWatch(host, 'etcd', l.log('etcd')));
    },
    async rollback(ctx) {
      ctx.etcd?.close();
      if (ctx.cluster.datastoreType === 'etcd') {
        await ctx.host.services.stop('etcd');
        rmSync(ctx.host.layout.etcdDataDir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'store-state',
    title: 'Storing cluster state',
    async run(ctx) {
      const state = new ClusterState(ctx.etcd!, ctx.pkiKeys);
      if (await state.getConfig()) {
        throw new Error('the datastore already holds a k8sd cluster; use an empty etcd, or join that cluster instead');
      }
      // A new cluster gets a new wrapping key (a file left by an earlier cluster is replaced).
      ctx.pkiKeys.install((await PkiKeyWrapper.generate(ctx.crypto)).document);
      const b = ctx.bundle!;
      await state.putPki({ cas: b.cas, serviceAccountKey: b.serviceAccountKey });
      await state.putConfig(ctx.cluster);
      await state.putNode({ name: ctx.req.name, address: ctx.req.address, role: 'control-plane', clusterCert: ctx.identity.cert, joinedAt: new Date().toISOString() });
    },
    async rollback(ctx) {
      // Only reached with an external datastore (managed etcd data is removed wholesale).
      if (ctx.cluster.datastoreType === 'external' && ctx.etcd) await ctx.etcd.deletePrefix('/k8sd/').catch(() => 0);
      ctx.pkiKeys.remove();
    },
  },
  {
    name: 'start-control-plane',
    title: 'Starting kube-apiserver, kube-controller-manager and kube-scheduler',
    async run(ctx) {
      // containerd needs nothing from the control plane: it starts and imports its images meanwhile.
      ctx.containerdPrepared = prepareContainerd(ctx.host, ctx.log, Math.min(remaining(ctx), 60_000)).then(
        () => null,
        (err: Error) => err,
      );
      await ctx.security.beforeApiserver(ctx.cluster);
      await startKubernetesControlPlane(ctx.host, remaining(ctx));
    },
    async rollback(ctx) {
      for (const s of ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'] as const) await ctx.host.services.stop(s);
      await ctx.security.stop();
      if (ctx.containerdPrepared) {
        await ctx.containerdPrepared;
        await removeNodeComponents(ctx.host, ctx.log, 'control-plane');
      }
    },
  },
  {
    name: 'start-node',
    title: 'Starting containerd, kubelet and kube-proxy',
    async run(ctx) {
      const failed = await (ctx.containerdPrepared ?? prepareContainerd(ctx.host, ctx.log, Math.min(remaining(ctx), 60_000)).then(() => null));
      if (failed) throw failed;
      await startNodeServices(ctx.host, 'control-plane');
    },
    async rollback(ctx) {
      await removeNodeComponents(ctx.host, ctx.log, 'control-plane');
    },
  },
  {
    name: 'mark-bootstrapped',
    title: 'Recording node membership',
    async run(ctx) {
      const local = localAddress({ nodeAddress: ctx.req.address });
      writeLocalNode(ctx.host.layout, {
        name: ctx.req.name,
        address: ctx.req.address,
        role: 'control-plane',
        clusterPort: 6400,
        etcdEndpoints: ctx.cluster.datastoreType === 'etcd' ? [etcdClientUrl(local, ctx.cluster.etcdPort)] : ctx.cluster.datastoreServers,
        securePort: ctx.cluster.securePort,
        bootstrappedAt: new Date().toISOString(),
      });
    },
    async rollback(ctx) {
      removeLocalNode(ctx.host.layout);
    },
  },
];

export async function bootstrap(deps: BootstrapDeps, req: BootstrapRequest, onEvent?: (e: StepEvent) => void): Promise<{ etcd: EtcdClient; cluster: ClusterConfig }> {
  const ctx: Ctx = { ...deps, req, cluster: clusterConfigFrom(req.config), written: [], createdDirs: [], deadline: Date.now() + req.timeoutMs };
  await runFlow('bootstrap', steps, ctx, onEvent);
  return { etcd: ctx.etcd!, cluster: ctx.cluster };
}
