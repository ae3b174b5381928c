// The steps every node lifecycle flow is built from: check the node, write its files, start the
// datastore, the control plane and the node components, record the membership. Bootstrap, the
// control-plane join and the worker join differ only in what they feed these steps.
import { existsSync, rmSync } from 'node:fs';
import { EtcdClient } from '../../datastore/etcd.js';
import { ClusterConfig, featuresOf, LocalNodeState, readLocalNode, removeLocalNode, writeLocalNode } from '../../datastore/state.js';
import { onPath } from '../../host/host.js';
import { commitFileSet, FileSpec, missingDirs, removeEmptyDirs, removeFiles } from '../../host/files.js';
import { Logger } from '../../log.js';
import { PkiBundle, pkiFiles } from '../../pki/signer.js';
import { ArgOverrides, Args } from '../../services/args.js';
import { assertComponents } from '../../services/binaries.js';
import { archivesOfFeatures } from '../../services/images.js';
import { Host } from '../../services/host.js';
import { NodeRole } from '../../services/registry.js';
import { apiServerUrl, BINARIES, localAddress, ServiceId } from '../../services/specs.js';
import { controlPlaneArgsFiles, controlPlaneServices, crashWatch, etcdClientUrl, k8sdEtcdTlsFiles, NodeParams, serviceContext, startKubernetesControlPlane, waitEtcdHealthy, waitKubernetesControlPlane } from '../controlplane.js';
import { PeerRecord, writePeers } from '../cluster/peer.js';
import { controlPlaneNodeContext, nodeBinaries, nodeComponentFiles, prepareContainerd, removeNodeComponents, startNodeServices } from '../membership/node-components.js';
import type { WeakenedFlag } from '../../config/overrides.js';
import { overrideFiles, warnWeakenedFlags } from '../overrides.js';
import { Step } from './flow.js';

/** Security settings turned into files and apiserver flags (audit, admission, encryption at rest). */
export interface SecurityProvider {
  files(config: ClusterConfig): Promise<FileSpec[]>;
  apiserverArgs(config: ClusterConfig): Args;
  /** Starts anything the apiserver needs before it starts (the KMS plugin). */
  beforeApiserver(config: ClusterConfig): Promise<void>;
  stop(): Promise<void>;
}

/** What the shared steps read and leave behind; each flow's context extends it. */
export interface NodeFlowCtx {
  host: Host;
  log: Logger;
  security: SecurityProvider;
  /** This node's name and address. */
  node: NodeParams;
  deadline: number;
  /** The cluster's configuration, once known (bootstrap: its file; a control-plane join: the cluster's reply). */
  cluster?: ClusterConfig;
  /** Files the write-config step wrote, and the directories it created (removed again when empty). */
  written: string[];
  createdDirs: string[];
  etcd?: EtcdClient;
  /** Set when the datastore step went on before etcd answered: settles once it does. */
  datastoreReady?: Promise<void>;
  /** Ends that wait (on rollback). */
  datastoreWait?: AbortController;
  /** containerd's preparation, started beside the control plane: settles to its error, or null. */
  containerdPrepared?: Promise<Error | null>;
  /** Lets that preparation import the images of the features that are off (true), or skip them (false). */
  releaseDeferredImages?: (go: boolean) => void;
  /** Whether the record step wrote peers.json. */
  wrotePeers?: boolean;
}

export type Ports = Array<[string, number, string]>;

export const remaining = (ctx: NodeFlowCtx): number => Math.max(1000, ctx.deadline - Date.now());
const containerdTimeout = (ctx: NodeFlowCtx): number => Math.min(remaining(ctx), 60_000);

export class AlreadyBootstrappedError extends Error {
  constructor(name: string, role: string) {
    super(`this node is already part of a cluster (node "${name}", ${role}); run "k8s status", or remove it first with "k8s remove-node"`);
    this.name = 'AlreadyBootstrappedError';
  }
}

/** Throws when a port is taken, naming the address, the port, the component and what to do. */
export async function checkPortsFree(host: Host, ports: Ports, advice: string): Promise<void> {
  for (const [a, p, what] of ports) {
    if (!(await host.portFree(a, p))) throw new Error(`port ${a}:${p} (${what}) is already in use; stop whatever listens there${advice}`);
  }
}

export interface PreflightSpec<C extends NodeFlowCtx> {
  role: NodeRole;
  /** The control-plane services whose binaries must be installed (none on a worker). */
  controlPlane?(ctx: C): ServiceId[];
  /** Whether the node runs flanneld (its binary is then required). */
  network?(ctx: C): boolean;
  /** Checks of this flow alone, after the binaries and before the ports. */
  checks?(ctx: C): Promise<void>;
  ports(ctx: C): Ports;
  /** Appended to "stop whatever listens there" when a port is taken. */
  portAdvice: string;
  /** Set on control-plane nodes: what the error says to do with an etcd data dir left by an earlier cluster. */
  etcdDataDirAdvice?: string;
}

/** Checks everything it can before anything is written or started; changes nothing. */
export function preflightStep<C extends NodeFlowCtx>(spec: PreflightSpec<C>): Step<C> {
  return {
    name: 'preflight',
    title: 'Checking the node',
    async run(ctx) {
      const l = ctx.host.layout;
      const existing = readLocalNode(l);
      if (existing) throw new AlreadyBootstrappedError(existing.name, existing.role);
      if (spec.controlPlane) assertComponents(l, spec.controlPlane(ctx).map((s) => [BINARIES[s].component, BINARIES[s].binary] as const));
      assertComponents(l, nodeBinaries(spec.role, spec.network?.(ctx) ?? false));
      if (!onPath('iptables')) throw new Error('iptables is not installed; kube-proxy and the CNI plugins need it (apt-get install iptables)');
      await spec.checks?.(ctx);
      await checkPortsFree(ctx.host, spec.ports(ctx), spec.portAdvice);
      if (spec.etcdDataDirAdvice && existsSync(l.etcdDataDir)) throw new Error(`${l.etcdDataDir} already exists from an earlier cluster; ${spec.etcdDataDirAdvice}`);
    },
  };
}

/** The ports a control-plane node needs besides the node components'. */
export function controlPlanePorts(address: string, cluster: Pick<ClusterConfig, 'securePort' | 'datastoreType' | 'etcdPort' | 'etcdPeerPort'>): Ports {
  const local = localAddress({ nodeAddress: address });
  const ports: Ports = [
    [address, cluster.securePort, 'kube-apiserver'],
    [local, 10257, 'kube-controller-manager'],
    [local, 10259, 'kube-scheduler'],
  ];
  if (cluster.datastoreType === 'etcd') ports.push([address, cluster.etcdPort, 'etcd client'], [address, cluster.etcdPeerPort, 'etcd peer'], [local, cluster.etcdPort, 'etcd client']);
  return ports;
}

/** What a node's own configuration adds to the files of its components. */
export interface NodeOverrides {
  extraArgs: Partial<Record<string, ArgOverrides>>;
  weakened: WeakenedFlag[];
  configFiles: Record<string, string>;
  containerdConfig: Record<string, unknown>;
}

/** The files of a control-plane node: PKI, security, control-plane and node component arguments, overrides. */
export async function controlPlaneFiles(
  ctx: NodeFlowCtx,
  bundle: PkiBundle,
  etcd: { initialCluster: string; state: 'new' | 'existing' },
  overrides: NodeOverrides,
  operation: string,
): Promise<FileSpec[]> {
  const { host, node } = ctx;
  const cluster = ctx.cluster!;
  const server = apiServerUrl({ nodeAddress: node.address, securePort: cluster.securePort });
  const sctx = serviceContext(host, node, cluster, etcd, ctx.security.apiserverArgs(cluster));
  const files = [
    ...pkiFiles(host.layout, bundle, server, 'control-plane'),
    ...(await ctx.security.files(cluster)),
    ...controlPlaneArgsFiles(host, sctx, controlPlaneServices(cluster), overrides.extraArgs),
    ...nodeComponentFiles(controlPlaneNodeContext(host.layout, node, cluster), overrides.extraArgs, overrides.containerdConfig),
    ...overrideFiles(host.layout, overrides.weakened, overrides.configFiles),
  ];
  warnWeakenedFlags(ctx.log, overrides.weakened, operation);
  return files;
}

/**
 * Writes the node's files as one set; undone by removing them and the directories it created.
 * `volatileDirs`: directories the services create when they start, removed on undo too when empty.
 */
export function writeConfigStep<C extends NodeFlowCtx>(files: (ctx: C) => Promise<FileSpec[]>, volatileDirs: (ctx: C) => string[] = () => []): Step<C> {
  return {
    name: 'write-config',
    title: 'Writing certificates, kubeconfigs and service arguments',
    async run(ctx) {
      const set = await files(ctx);
      ctx.written = set.map((f) => f.path);
      ctx.createdDirs = missingDirs([...ctx.written, ...volatileDirs(ctx).map((d) => `${d}/x`)]);
      commitFileSet(set, ctx.host.layout.k8sdStateDir);
    },
    async rollback(ctx) {
      removeFiles(ctx.written);
      removeEmptyDirs(ctx.createdDirs);
    },
  };
}

/**
 * Starts managed etcd (or connects to the external datastore) and waits until it answers.
 *
 * `early` (a new cluster's managed etcd, whose data dir is empty): the step ends once etcd
 * listens, and `ctx.datastoreReady` settles when it answers, so kube-apiserver starts meanwhile.
 * etcd completes the TLS handshakes it has queued once it is ready, so kube-apiserver's client,
 * which waits on a connecting handshake, gets through at that moment; a refused connection
 * would cost it gRPC's ~1 s reconnect backoff instead, hence the wait for the listener.
 */
export function startDatastoreStep<C extends NodeFlowCtx>(title: string, opts: { early?: boolean } = {}): Step<C> {
  return {
    name: 'start-datastore',
    title,
    async run(ctx) {
      const { host, node } = ctx;
      const cluster = ctx.cluster!;
      const l = host.layout;
      const managed = cluster.datastoreType === 'etcd';
      if (managed) await host.services.start('etcd');
      const endpoints = managed ? [etcdClientUrl(localAddress({ nodeAddress: node.address }), cluster.etcdPort)] : cluster.datastoreServers;
      ctx.etcd = EtcdClient.fromFiles(endpoints, k8sdEtcdTlsFiles(l, managed));
      const crashed = crashWatch(host, 'etcd', l.log('etcd'));
      ctx.datastoreWait = new AbortController();
      const healthy = waitEtcdHealthy(ctx.etcd, remaining(ctx), crashed, ctx.datastoreWait.signal);
      if (!(opts.early && managed)) return healthy;
      ctx.datastoreReady = healthy;
      healthy.catch(() => undefined); // awaited by a later step; a failure before then ends this one (below)
      await Promise.race([waitListening(host, 'etcd', cluster.etcdPort, remaining(ctx), crashed), healthy]);
    },
    async rollback(ctx) {
      ctx.datastoreWait?.abort();
      await ctx.datastoreReady?.catch(() => undefined);
      ctx.etcd?.close();
      if (ctx.cluster?.datastoreType === 'etcd') {
        await ctx.host.services.stop('etcd');
        rmSync(ctx.host.layout.etcdDataDir, { recursive: true, force: true });
      }
    },
  };
}

/** Waits until `service` listens on `port`, failing fast when it keeps exiting. */
export async function waitListening(host: Host, service: string, port: number, timeoutMs: number, isAlive: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await host.listening(port)) return;
    const dead = await isAlive();
    if (dead) throw new Error(dead);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${service} did not listen on port ${port} within ${Math.round(timeoutMs / 1000)} s; see its log`);
}

/**
 * Starts kube-apiserver, kube-controller-manager and kube-scheduler; containerd is prepared meanwhile.
 *
 * `apiserverFirst` (bootstrap): the step starts kube-apiserver alone and `controlPlaneReadyStep`
 * starts the other two once it is ready. Started beside it they spend ~1 CPU-second of this
 * machine's two on their own start-up while kube-apiserver starts, then wait out their leader
 * election's 2 s retry period; started at /readyz they take the lease at their first try.
 */
export function startControlPlaneStep<C extends NodeFlowCtx>(opts: { apiserverFirst?: boolean } = {}): Step<C> {
  return {
    name: 'start-control-plane',
    title: opts.apiserverFirst ? 'Starting kube-apiserver' : 'Starting kube-apiserver, kube-controller-manager and kube-scheduler',
    async run(ctx) {
      // containerd needs nothing from the control plane: it starts and imports the images the node
      // needs meanwhile, then those of the enabled features. The images of features that are off
      // (up to ~5 s of unpacking for containerd on this machine's 2 CPUs) wait until kube-apiserver
      // is ready: they would slow its start, and nothing runs them yet.
      const features = featuresOf(ctx.cluster!);
      const soon = archivesOfFeatures((f) => features[f].enabled);
      const laterAfter = new Promise<boolean>((resolve) => (ctx.releaseDeferredImages = resolve));
      ctx.containerdPrepared = prepareContainerd(ctx.host, ctx.log, containerdTimeout(ctx), { soon: (a) => soon.has(a), laterAfter }).then(
        () => null,
        (err: Error) => err,
      );
      await ctx.security.beforeApiserver(ctx.cluster!);
      if (opts.apiserverFirst) await ctx.host.services.start('kube-apiserver');
      else await startKubernetesControlPlane(ctx.host, remaining(ctx));
    },
    async rollback(ctx) {
      for (const s of ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'] as const) await ctx.host.services.stop(s);
      await ctx.security.stop();
      ctx.releaseDeferredImages?.(false);
      if (ctx.containerdPrepared) {
        await ctx.containerdPrepared;
        await removeNodeComponents(ctx.host, ctx.log, 'control-plane');
      }
    },
  };
}

/**
 * After `startControlPlaneStep({ apiserverFirst: true })`: waits for kube-apiserver's /readyz, then
 * starts kube-controller-manager and kube-scheduler. That step's undo stops them.
 */
export function controlPlaneReadyStep<C extends NodeFlowCtx>(): Step<C> {
  return {
    name: 'control-plane-ready',
    title: 'Waiting for kube-apiserver, then starting kube-controller-manager and kube-scheduler',
    async run(ctx) {
      await waitKubernetesControlPlane(ctx.host, remaining(ctx));
      for (const s of ['kube-controller-manager', 'kube-scheduler'] as const) await ctx.host.services.start(s);
    },
  };
}

/** Starts containerd (unless the control-plane step prepared it), the kubelet, kube-proxy and flanneld. */
export function startNodeStep<C extends NodeFlowCtx>(role: NodeRole, name: string, title: string): Step<C> {
  return {
    name,
    title,
    async run(ctx) {
      ctx.releaseDeferredImages?.(true); // the control plane is ready by now
      const failed = await (ctx.containerdPrepared ?? prepareContainerd(ctx.host, ctx.log, containerdTimeout(ctx)).then(() => null));
      if (failed) throw failed;
      await startNodeServices(ctx.host, role);
    },
    async rollback(ctx) {
      await removeNodeComponents(ctx.host, ctx.log, role);
    },
  };
}

/** Records this node's membership on disk (and, on a joined node, the peers it calls). */
export function recordNodeStep<C extends NodeFlowCtx>(name: string, record: (ctx: C) => { node: LocalNodeState; peers?: PeerRecord[] }): Step<C> {
  return {
    name,
    title: 'Recording node membership',
    async run(ctx) {
      const { node, peers } = record(ctx);
      if (peers) {
        writePeers(ctx.host.layout, peers);
        ctx.wrotePeers = true;
      }
      writeLocalNode(ctx.host.layout, node);
    },
    async rollback(ctx) {
      removeLocalNode(ctx.host.layout);
      if (ctx.wrotePeers) rmSync(ctx.host.layout.peersFile, { force: true });
    },
  };
}
