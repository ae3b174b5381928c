// Bootstrap: turn an unclustered node into the first control-plane node.
import { BootstrapConfig } from '../../config/bootstrap.js';
import { CryptoBackend } from '../../crypto/types.js';
import { EtcdClient } from '../../datastore/etcd.js';
import { ClusterConfig, ClusterState, featuresOf } from '../../datastore/state.js';
import { nthAddress, parseCidrList } from '../../config/net.js';
import { Logger } from '../../log.js';
import { ensureCas, generateServiceAccountKey, issueNodeCertificates, PkiBundle } from '../../pki/signer.js';
import { CaName } from '../../pki/table.js';
import { PkiKeyWrapper, PkiWrappingKeyFile } from '../../pki/key-wrap.js';
import { localAddress } from '../../services/specs.js';
import { Host } from '../../services/host.js';
import { controlPlaneServices, etcdClientUrl, etcdPeerUrl, nodeIdentity } from '../controlplane.js';
import { ClusterIdentity } from '../identity.js';
import { nodePorts, routesTo } from '../membership/node-components.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { firstPodNetworkStep } from './first-pod-network.js';
import { runFlow, Step, StepEvent } from './flow.js';
import {
  AlreadyBootstrappedError,
  controlPlaneFiles,
  controlPlaneReadyStep,
  controlPlanePorts,
  NodeFlowCtx,
  preflightStep,
  recordNodeStep,
  SecurityProvider,
  startControlPlaneStep,
  startDatastoreStep,
  startNodeStep,
  writeConfigStep,
} from './node-steps.js';

export { AlreadyBootstrappedError };
export type { SecurityProvider };

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

interface Ctx extends BootstrapDeps, NodeFlowCtx {
  req: BootstrapRequest;
  cluster: ClusterConfig;
  bundle?: PkiBundle;
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

const leadingSteps: Step<Ctx>[] = [
  preflightStep<Ctx>({
    role: 'control-plane',
    controlPlane: (ctx) => controlPlaneServices(ctx.cluster),
    network: (ctx) => featuresOf(ctx.cluster).network.enabled,
    async checks(ctx) {
      if (ctx.cluster.fips && !ctx.fipsEnabled) {
        throw new Error('fips: true is set but k8sd is not running in FIPS mode; start k8sd with K8S_FIPS=1 (snap: snap set k8s fips=true) on a host with an active OpenSSL FIPS provider');
      }
      ctx.cluster.fips = ctx.fipsEnabled;
      const kubernetesService = nthAddress(parseCidrList(ctx.cluster.serviceCidr)[0]!, 1);
      if (featuresOf(ctx.cluster).network.enabled && !(await routesTo(kubernetesService))) {
        throw new Error(`this node has no route to the service CIDR (${kubernetesService}); add a default route (ip route add default via <gateway>), which host-network pods need to reach Services`);
      }
    },
    ports: (ctx) => [...controlPlanePorts(ctx.req.address, ctx.cluster), ...nodePorts('control-plane', ctx.cluster.securePort)],
    portAdvice: ', or pick another port in the bootstrap file',
    etcdDataDirAdvice: 'remove it to bootstrap a new one',
  }),
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
  writeConfigStep<Ctx>(
    async (ctx) => {
      const { host, req, cluster } = ctx;
      const b = ctx.bundle!;
      const files = await controlPlaneFiles(
        ctx,
        b,
        { initialCluster: `${req.name}=${etcdPeerUrl(req.address, cluster.etcdPeerPort)}`, state: 'new' },
        { extraArgs: req.config.extraArgs, weakened: req.config.weakened, configFiles: req.config.configFiles, containerdConfig: req.config.raw['extra-node-containerd-config'] ?? {} },
        'bootstrap',
      );
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
      return files;
    },
    // run/, etcd data and logs are volatile: the services create them when they start.
    (ctx) => [ctx.host.layout.runDir, ctx.host.layout.etcdDataDir],
  ),
  firstPodNetworkStep<Ctx>(),
];

const storeStateStep: Step<Ctx> = {
  name: 'store-state',
  title: 'Storing cluster state',
  async run(ctx) {
    await ctx.datastoreReady;
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
};

const trailingSteps: Step<Ctx>[] = [
  startNodeStep<Ctx>('control-plane', 'start-node', 'Starting containerd, kubelet and kube-proxy'),
  recordNodeStep<Ctx>('mark-bootstrapped', (ctx) => ({
    node: {
      name: ctx.req.name,
      address: ctx.req.address,
      role: 'control-plane',
      clusterPort: K8SD_CLUSTER_PORT,
      etcdEndpoints: ctx.cluster.datastoreType === 'etcd' ? [etcdClientUrl(localAddress({ nodeAddress: ctx.req.address }), ctx.cluster.etcdPort)] : ctx.cluster.datastoreServers,
      securePort: ctx.cluster.securePort,
      bootstrappedAt: new Date().toISOString(),
    },
  })),
];

/**
 * The bootstrap's steps. With managed etcd (a new, empty data dir) kube-apiserver starts while
 * etcd elects itself and k8sd stores the cluster state (issue 17: etcd's first answer took 0.3-1 s
 * of the time to /readyz), and the controller manager and the scheduler start once it is ready.
 * An external datastore is checked for an earlier k8sd cluster first, before any kube-apiserver
 * writes to it.
 */
export function bootstrapSteps(datastoreType: ClusterConfig['datastoreType']): Step<Ctx>[] {
  const datastore: Step<Ctx>[] =
    datastoreType === 'etcd'
      ? [startDatastoreStep<Ctx>('Starting etcd', { early: true }), startControlPlaneStep<Ctx>({ apiserverFirst: true }), storeStateStep, controlPlaneReadyStep<Ctx>()]
      : [startDatastoreStep<Ctx>('Connecting to the datastore'), storeStateStep, startControlPlaneStep<Ctx>()];
  return [...leadingSteps, ...datastore, ...trailingSteps];
}

export async function bootstrap(deps: BootstrapDeps, req: BootstrapRequest, onEvent?: (e: StepEvent) => void): Promise<{ etcd: EtcdClient; cluster: ClusterConfig }> {
  const ctx: Ctx = {
    ...deps,
    req,
    node: { name: req.name, address: req.address },
    cluster: clusterConfigFrom(req.config),
    written: [],
    createdDirs: [],
    deadline: Date.now() + req.timeoutMs,
  };
  await runFlow('bootstrap', bootstrapSteps(ctx.cluster.datastoreType), ctx, onEvent);
  return { etcd: ctx.etcd!, cluster: ctx.cluster };
}
