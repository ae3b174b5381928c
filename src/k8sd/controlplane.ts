// Control-plane setup shared by bootstrap and control-plane join: service contexts,
// args files, and starting the services in order.
import { FileSpec } from '../host/files.js';
import { Host } from '../services/host.js';
import { ClusterConfig } from '../datastore/state.js';
import { mergeArgs, renderArgsFile, ArgOverrides, Args } from '../services/args.js';
import { ARG_BUILDERS, CONTROL_PLANE_SERVICES, ServiceContext, ServiceId, hostPort, localAddress } from '../services/specs.js';
import { parseCidrList, nthAddress } from '../config/net.js';
import { NodeIdentity } from '../pki/table.js';
import { waitApiserverReady } from './kube.js';
import { EtcdClient } from '../datastore/etcd.js';

export interface NodeParams {
  name: string;
  address: string;
}

/**
 * The client certificate k8sd uses for etcd: its own on managed etcd, the apiserver's
 * (the one the user supplied) on an external datastore.
 */
export function k8sdEtcdTlsFiles(layout: Host['layout'], managed: boolean): { ca: string; cert: string; key: string } {
  return managed
    ? { ca: layout.pki('etcd/ca.crt'), cert: layout.pki('etcd/k8sd-client.crt'), key: layout.pki('etcd/k8sd-client.key') }
    : { ca: layout.pki('etcd/ca.crt'), cert: layout.pki('apiserver-etcd-client.crt'), key: layout.pki('apiserver-etcd-client.key') };
}

export function etcdClientUrl(address: string, port: number): string {
  return `https://${hostPort(address, port)}`;
}

export function etcdPeerUrl(address: string, port: number): string {
  return `https://${hostPort(address, port)}`;
}

export function nodeIdentity(host: Host, node: NodeParams, config: Pick<ClusterConfig, 'serviceCidr' | 'extraSans' | 'clusterDomain'>, extraSans: string[] = []): NodeIdentity {
  return {
    hostname: node.name,
    address: node.address,
    localAddresses: host.localAddresses(),
    serviceIps: parseCidrList(config.serviceCidr).map((c) => nthAddress(c, 1)),
    extraSans: [...new Set([...config.extraSans, ...extraSans])],
    clusterDomain: config.clusterDomain,
  };
}

export function serviceContext(
  host: Host,
  node: NodeParams,
  config: ClusterConfig,
  etcd: { initialCluster: string; state: 'new' | 'existing' },
  apiserverSecurityArgs: Args,
): ServiceContext {
  const local = localAddress({ nodeAddress: node.address });
  const etcdServers = config.datastoreType === 'external' ? config.datastoreServers : [etcdClientUrl(local, config.etcdPort)];
  return {
    layout: host.layout,
    nodeName: node.name,
    nodeAddress: node.address,
    securePort: config.securePort,
    etcdPort: config.etcdPort,
    etcdPeerPort: config.etcdPeerPort,
    serviceCidr: config.serviceCidr,
    podCidr: config.podCidr,
    etcdServers,
    etcdInitialCluster: etcd.initialCluster,
    etcdInitialClusterState: etcd.state,
    apiserverSecurityArgs,
  };
}

export function controlPlaneServices(config: Pick<ClusterConfig, 'datastoreType'>): ServiceId[] {
  return CONTROL_PLANE_SERVICES.filter((s) => s !== 'etcd' || config.datastoreType === 'etcd');
}

/**
 * Go runtime settings of control-plane services, written to args/<service>-env (which the
 * supervisor and the snap's run-service both read). kube-apiserver runs with GOGC=50: the Go heap
 * may grow to 1.5 times the live heap before a collection instead of twice, which keeps ~35 MB off
 * a single node's apiserver (docs/performance.md, session 8) at the price of collections twice as
 * often; its live heap is mostly watch caches and OpenAPI documents, which a collection only marks.
 */
export const CONTROL_PLANE_GO_ENV: Partial<Record<ServiceId, Record<string, string>>> = { 'kube-apiserver': { GOGC: '50' } };

/** Args files for each control-plane service: defaults merged with the node's extra args; and their Go runtime env files. */
export function controlPlaneArgsFiles(
  host: Host,
  ctx: ServiceContext,
  services: ServiceId[],
  extraArgs: Partial<Record<string, ArgOverrides>>,
): FileSpec[] {
  return services.flatMap((svc) => {
    const build = ARG_BUILDERS[svc];
    if (!build) throw new Error(`no argument builder for ${svc}`);
    const files: FileSpec[] = [{ path: host.layout.args(svc), content: renderArgsFile(mergeArgs(build(ctx), extraArgs[svc])), mode: 0o600 }];
    const env = CONTROL_PLANE_GO_ENV[svc];
    if (env) files.push({ path: host.layout.args(`${svc}-env`), content: Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), mode: 0o600 });
    return files;
  });
}

export async function waitEtcdHealthy(client: EtcdClient, timeoutMs: number, isAlive: () => Promise<string | undefined>, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (await client.health()) return;
    const dead = await isAlive();
    if (dead) throw new Error(dead);
    // etcd answers about 0.3 s after it starts, and bootstrap waits on nothing else then: look often.
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd did not become healthy within ${Math.round(timeoutMs / 1000)} s; see its log`);
}

/** Reports a service that keeps crashing, so waits fail fast with the reason. */
export function crashWatch(host: Host, name: ServiceId, logHint: string): () => Promise<string | undefined> {
  return async () => {
    const st = await host.services.status(name);
    if (st.state === 'failed' || st.restarts >= 3) {
      return `${name} keeps exiting (${st.lastExit ?? 'unknown'}); see ${logHint}`;
    }
    return undefined;
  };
}

export async function startKubernetesControlPlane(host: Host, timeoutMs: number): Promise<void> {
  for (const svc of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const) await host.services.start(svc);
  await waitKubernetesControlPlane(host, timeoutMs);
}

/** Waits for kube-apiserver's /readyz, failing fast when it keeps exiting. */
export async function waitKubernetesControlPlane(host: Host, timeoutMs: number): Promise<void> {
  await waitApiserverReady(host.layout.kubeconfig('admin.conf'), timeoutMs, crashWatch(host, 'kube-apiserver', host.layout.log('kube-apiserver')));
}
