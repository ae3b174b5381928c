// Node components (workers, and control-plane nodes that run workloads): containerd, kubelet,
// kube-proxy and k8s-apiserver-proxy. Argument builders with secure defaults plus the
// config files they read. CIS Kubernetes Benchmark ids next to the settings they satisfy.
import yaml from 'js-yaml';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Layout } from '../layout.js';
import { Args } from './args.js';
import { GO_TLS_CIPHER_SUITES, ServiceId } from './specs.js';
import { controlCharacterProblem, GENERATED_CONF_FILES } from '../config/overrides.js';

/** The sandbox ("pause") image; the pause component builds it under this name. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.2';
export const NODE_SERVICES = ['containerd', 'k8s-apiserver-proxy', 'kubelet', 'kube-proxy', 'flanneld'] as const satisfies readonly ServiceId[];
export type NodeServiceId = (typeof NODE_SERVICES)[number];

export const KUBELET_PORT = 10250;
export const KUBELET_HEALTHZ_PORT = 10248;
export const KUBE_PROXY_HEALTHZ_PORT = 10256;
export const KUBE_PROXY_METRICS_PORT = 10249;

export interface NodeServiceContext {
  layout: Layout;
  role: 'control-plane' | 'worker';
  nodeName: string;
  nodeAddress: string;
  podCidr: string;
  serviceCidr: string;
  clusterDomain: string;
  dnsServiceIp?: string;
  /** false lets the kubelet run on a cgroup v1 host (Kubernetes >= 1.35 refuses by default). */
  failCgroupV1: boolean;
  /** Taints the kubelet registers the node with (control-plane-taints). */
  taints?: string[];
  /** The network feature is on: flanneld runs on the node. */
  network?: boolean;
  /** Port of the API server as seen from this node (127.0.0.1:<port>: the proxy on workers). */
  apiserverPort: number;
  /**
   * The host does not let k8sd lower OOM scores (no CAP_SYS_RESOURCE, e.g. inside a container):
   * containerd then clamps pods' oom_score_adj to its own, or runc fails to start any sandbox.
   */
  restrictOomScoreAdj?: boolean;
}


/** Config files of the node components, by path. */
export function kubeletConfigPath(l: Layout): string {
  return l.conf(GENERATED_CONF_FILES.kubeletConfig);
}
export function apiserverProxyEndpointsPath(l: Layout): string {
  return l.conf(GENERATED_CONF_FILES.apiserverProxyEndpoints);
}
export function cniConflistPath(l: Layout): string {
  return path.join(l.cniConfDir, '10-k8s-bridge.conflist');
}
/** The kubelet's current serving certificate and key (a link to the newest one its CSR brought). */
export function kubeletServingCertPath(l: Layout): string {
  return path.join(kubeletCertDir(l), 'kubelet-server-current.pem');
}
/** Makes the kubelet request a new serving certificate (through a CSR) when it next starts. */
export function dropKubeletServingCert(l: Layout): void {
  rmSync(kubeletServingCertPath(l), { force: true });
}
export function kubeletCertDir(l: Layout): string {
  return path.join(l.kubeletRootDir, 'pki');
}

export function containerdArgs(ctx: NodeServiceContext): Args {
  const l = ctx.layout;
  return {
    config: l.containerdConfigFile,
    address: l.containerdSocket,
    root: l.containerdRootDir,
    state: l.containerdStateDir,
    'log-level': 'warn',
  };
}

/** PATH for containerd: it finds containerd-shim-runc-v2 (and the shim finds runc) there. */
export function containerdPath(l: Layout, inheritedPath: string): string {
  const dirs = [path.dirname(l.componentBinary('containerd', 'containerd')), path.dirname(l.componentBinary('runc', 'runc'))];
  return [...new Set([...dirs, ...inheritedPath.split(':').filter(Boolean)])].join(':');
}

export type TomlValue = string | number | boolean | TomlValue[] | { [k: string]: TomlValue };
export type TomlTable = { [k: string]: TomlValue };

export function containerdConfig(ctx: NodeServiceContext): TomlTable {
  const l = ctx.layout;
  return {
    version: 4,
    root: l.containerdRootDir,
    state: l.containerdStateDir,
    imports: [path.join(l.containerdConfigDir, 'conf.d', '*.toml')],
    plugins: {
      'io.containerd.server.v1.grpc': { address: l.containerdSocket },
      'io.containerd.server.v1.ttrpc': { address: `${l.containerdSocket}.ttrpc` },
      'io.containerd.cri.v1.images': {
        snapshotter: 'overlayfs',
        pinned_images: { sandbox: PAUSE_IMAGE },
        registry: { config_path: path.join(l.containerdConfigDir, 'hosts.d') },
      },
      'io.containerd.cri.v1.runtime': {
        // Pod network namespaces under containerd's state dir, not the host's /var/run/netns.
        netns_mounts_under_state_dir: true,
        ...(ctx.restrictOomScoreAdj ? { restrict_oom_score_adj: true } : {}),
        containerd: {
          default_runtime_name: 'runc',
          runtimes: {
            runc: {
              runtime_type: 'io.containerd.runc.v2',
              options: {
                // No systemd on these hosts: the cgroupfs driver, matching the kubelet.
                SystemdCgroup: false,
                BinaryName: l.componentBinary('runc', 'runc'),
                Root: l.runcRootDir,
              },
            },
          },
        },
        cni: { bin_dirs: [l.cniBinDir], conf_dir: l.cniConfDir, max_conf_num: 1 },
      },
      'io.containerd.grpc.v1.cri': { stream_server_address: '127.0.0.1', stream_server_port: '0', enable_tls_streaming: false },
      'io.containerd.internal.v1.opt': { path: path.join(l.containerdRootDir, 'opt') },
      // NRI listens on a fixed host path; nodes sharing a host must not fight over it.
      'io.containerd.nri.v1.nri': { disable: true },
    },
  };
}

function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges extra-node-containerd-config into the generated config (extra wins). */
export function mergeToml(base: TomlTable, extra: Record<string, unknown>): TomlTable {
  const out: TomlTable = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const cur = out[k];
    if (isTable(cur) && typeof v === 'object' && v !== null && !Array.isArray(v)) out[k] = mergeToml(cur, v as Record<string, unknown>);
    else out[k] = v as TomlValue;
  }
  return out;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
// A literal (single-quoted) key cannot hold a quote or a line end; validation refuses such keys
// first (extra-node-containerd-config), this is the backstop for any other caller.
const tomlKey = (k: string): string => {
  if (BARE_KEY.test(k)) return k;
  const problem = controlCharacterProblem(k);
  if (problem) throw new Error(`containerd config key ${JSON.stringify(k)}: ${problem}`);
  return `'${k.replace(/'/g, '')}'`;
};
function tomlScalar(v: TomlValue): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlScalar).join(', ')}]`;
  throw new Error('nested tables inside arrays are not supported in containerd config');
}

/** A small TOML writer: enough for containerd's config (tables, strings, numbers, booleans, arrays). */
export function renderToml(table: TomlTable, prefix: string[] = []): string {
  const scalars = Object.entries(table).filter(([, v]) => !isTable(v));
  const tables = Object.entries(table).filter(([, v]) => isTable(v)) as Array<[string, TomlTable]>;
  let out = '';
  if (prefix.length && (scalars.length || !tables.length)) out += `\n[${prefix.map(tomlKey).join('.')}]\n`;
  for (const [k, v] of scalars) out += `${prefix.length ? '  ' : ''}${tomlKey(k)} = ${tomlScalar(v)}\n`;
  for (const [k, v] of tables) out += renderToml(v, [...prefix, k]);
  return out;
}

export function kubeletArgs(ctx: NodeServiceContext): Args {
  const l = ctx.layout;
  const cgroupRoot = l.kubeletCgroupRoot;
  return {
    ...(cgroupRoot ? { 'cgroup-root': cgroupRoot } : {}),
    config: kubeletConfigPath(l),
    kubeconfig: l.kubeconfig('kubelet.conf'),
    'root-dir': l.kubeletRootDir,
    // Defaults to /var/lib/kubelet/pki whatever --root-dir says.
    'cert-dir': kubeletCertDir(l),
    'hostname-override': ctx.nodeName,
    'node-ip': ctx.nodeAddress,
    // Labels in kubernetes.io are refused by NodeRestriction; k8sd adds node-role.kubernetes.io/<role> itself.
    'node-labels': `k8sd.io/role=${ctx.role}`,
    ...(ctx.taints?.length ? { 'register-with-taints': ctx.taints.join(',') } : {}),
  };
}

export function kubeletConfig(ctx: NodeServiceContext): Record<string, unknown> {
  const l = ctx.layout;
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // Kubernetes >= 1.35 refuses cgroup v1 hosts unless told otherwise.
    failCgroupV1: ctx.failCgroupV1,
    cgroupDriver: 'cgroupfs',
    containerRuntimeEndpoint: `unix://${l.containerdSocket}`,
    authentication: {
      anonymous: { enabled: false }, // CIS 4.2.1
      webhook: { enabled: true, cacheTTL: '2m0s' },
      x509: { clientCAFile: l.pki('client-ca.crt') }, // CIS 4.2.3
    },
    authorization: { mode: 'Webhook', webhook: { cacheAuthorizedTTL: '5m0s', cacheUnauthorizedTTL: '30s' } }, // CIS 4.2.2
    readOnlyPort: 0, // CIS 4.2.4
    streamingConnectionIdleTimeout: '5m0s', // CIS 4.2.5
    podPidsLimit: 4096, // CIS 4.2.13: a fork bomb in one pod cannot exhaust the node's PIDs
    seccompDefault: true, // CIS 4.2.14: RuntimeDefault seccomp for every container that names no profile
    // CIS 4.2.10: the kubelet renews its client certificate itself through a
    // kubernetes.io/kube-apiserver-client-kubelet CSR that k8sd approves (its own node only) and
    // signs; k8sd puts the certificate of kubelet.conf into the kubelet's store before every start
    // after it wrote a new one (join, refresh-certs, CA rotation): kubelet-client-store.ts.
    rotateCertificates: true,
    // The serving certificate comes through a kubernetes.io/kubelet-serving CSR that k8sd signs. CIS 4.2.10/4.2.11
    serverTLSBootstrap: true,
    tlsMinVersion: 'VersionTLS12',
    tlsCipherSuites: GO_TLS_CIPHER_SUITES, // CIS 4.2.12
    clusterDomain: ctx.clusterDomain,
    ...(ctx.dnsServiceIp ? { clusterDNS: [ctx.dnsServiceIp] } : {}),
    failSwapOn: false,
    serializeImagePulls: false,
    healthzBindAddress: '127.0.0.1',
    healthzPort: KUBELET_HEALTHZ_PORT,
    port: KUBELET_PORT,
    podLogsDir: l.podLogsDir,
    // Defaults to /usr/libexec/kubernetes/...: keep the node's files under its root.
    volumePluginDir: path.join(l.kubeletRootDir, 'volume-plugins'),
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1Gi', 'imagefs.available': '1Gi' },
    // protectKernelDefaults (CIS 4.2.6) makes the kubelet exit unless the host's kernel sysctls already
    // match its expectations (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1); k8sd does
    // not tune the host, so it stays off here and is part of the hardening profile.
    protectKernelDefaults: false,
  };
}

export function renderKubeletConfig(ctx: NodeServiceContext): string {
  return yaml.dump(kubeletConfig(ctx), { lineWidth: -1 });
}

/** kube-proxy by flags (extra args then override any of them), iptables mode. */
export function kubeProxyArgs(ctx: NodeServiceContext): Args {
  return {
    kubeconfig: ctx.layout.kubeconfig('proxy.conf'),
    'cluster-cidr': ctx.podCidr,
    'hostname-override': ctx.nodeName,
    'proxy-mode': 'iptables', // no IPVS in these kernels; nftables needs nft
    'healthz-bind-address': `127.0.0.1:${KUBE_PROXY_HEALTHZ_PORT}`,
    'metrics-bind-address': `127.0.0.1:${KUBE_PROXY_METRICS_PORT}`,
    profiling: 'false',
    // Leave the host-wide conntrack table size alone (not writable from a network namespace).
    'conntrack-max-per-core': '0',
  };
}

export function apiserverProxyArgs(ctx: NodeServiceContext): Args {
  return {
    listen: `127.0.0.1:${ctx.apiserverPort}`,
    endpoints: apiserverProxyEndpointsPath(ctx.layout),
    'refresh-interval': '15s',
  };
}

/** The endpoints file of k8s-apiserver-proxy. */
export function renderApiserverProxyEndpoints(endpoints: string[]): string {
  return JSON.stringify({ endpoints: [...new Set(endpoints)].sort() }, null, 2) + '\n';
}

/**
 * flanneld (the network feature): VXLAN between nodes over the pod CIDRs the controller manager
 * assigns (kube subnet manager), with a client certificate of its own (flannel.conf, user
 * k8sd:network) whose ClusterRole comes with the network feature. It masquerades traffic
 * that leaves the cluster network, so pod-to-pod traffic keeps its source address (NetworkPolicy).
 */
/** What flanneld's files depend on: the node and the cluster's pod CIDR. */
export type FlannelContext = Pick<NodeServiceContext, 'layout' | 'nodeName' | 'nodeAddress' | 'podCidr'>;

export function flanneldArgs(ctx: FlannelContext): Args {
  const l = ctx.layout;
  return {
    'kube-subnet-mgr': 'true',
    'kubeconfig-file': l.kubeconfig('flannel.conf'),
    'net-config-path': l.flannelConfFile,
    'subnet-file': l.flannelSubnetFile,
    iface: ctx.nodeAddress,
    'ip-masq': 'true',
  };
}

/** flanneld's environment: the node it runs for (the kube subnet manager reads NODE_NAME). */
export function renderFlanneldEnv(ctx: FlannelContext): string {
  return `NODE_NAME=${ctx.nodeName}\n`;
}

export function renderFlannelNetConf(podCidr: string): string {
  const v4 = podCidr.split(',').find((c) => !c.includes(':'));
  const v6 = podCidr.split(',').find((c) => c.includes(':'));
  return (
    JSON.stringify(
      {
        ...(v4 ? { EnableIPv4: true, Network: v4 } : { EnableIPv4: false }),
        ...(v6 ? { EnableIPv6: true, IPv6Network: v6 } : {}),
        Backend: { Type: 'vxlan' },
      },
      null,
      2,
    ) + '\n'
  );
}

export interface PodNetworkOptions {
  /** The network feature runs: flanneld masquerades, and pod packets leave room for VXLAN. */
  network: boolean;
  /** Pod MTU: flanneld's FLANNEL_MTU (the interface's MTU minus the VXLAN overhead). */
  mtu?: number;
}

/** The pod network's name in the conflist (host-local keeps its leases in a directory of this name). */
export const CNI_NETWORK_NAME = 'k8s-pod-network';

/** Pod networking on one node: bridge + host-local IPAM over the node's pod CIDR(s), plus portmap. */
export function renderCniConflist(l: Layout, podCidrs: string[], opts: PodNetworkOptions = { network: false }): string {
  const v4 = podCidrs.some((c) => !c.includes(':'));
  const v6 = podCidrs.some((c) => c.includes(':'));
  return (
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: CNI_NETWORK_NAME,
        plugins: [
          {
            type: 'bridge',
            bridge: 'cni0',
            isGateway: true,
            // With the network feature flanneld masquerades only traffic leaving the cluster network.
            ipMasq: !opts.network,
            ...(opts.network && opts.mtu ? { mtu: opts.mtu } : {}),
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              dataDir: path.join(l.cniStateDir, 'networks'),
              ranges: podCidrs.map((subnet) => [{ subnet }]),
              routes: [...(v4 ? [{ dst: '0.0.0.0/0' }] : []), ...(v6 ? [{ dst: '::/0' }] : [])],
            },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ) + '\n'
  );
}

/**
 * A node's CNI config over `podCidrs`: with the network feature (flanneld's args file) it needs
 * flanneld's MTU, asked of `flannelMtu` only then; undefined while that MTU is not known.
 */
export async function podNetworkConflist(l: Layout, podCidrs: string[], flannelMtu: () => number | undefined | Promise<number | undefined>): Promise<string | undefined> {
  const network = existsSync(l.args('flanneld'));
  const mtu = network ? await flannelMtu() : undefined;
  if (network && !mtu) return undefined;
  return renderCniConflist(l, podCidrs, { network, ...(mtu ? { mtu } : {}) });
}

export const NODE_ARG_BUILDERS: Record<NodeServiceId, (ctx: NodeServiceContext) => Args> = {
  containerd: containerdArgs,
  'k8s-apiserver-proxy': apiserverProxyArgs,
  kubelet: kubeletArgs,
  'kube-proxy': kubeProxyArgs,
  flanneld: flanneldArgs,
};
