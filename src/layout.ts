// Every host path is derived here, from K8S_ROOT and the snap environment.
// No other module builds a host path by hand.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GENERATED_CONF_FILES } from './config/overrides.js';

/**
 * The repository (dev install) or $SNAP (snap install) that holds dist/, snap/ and the bundled
 * binaries: the parent of the dist/ (or, under vitest, src/) directory this module is in. Found by
 * name, not by depth, because k8sd runs as one bundle, dist/k8sd/main.js, one level deeper than
 * dist/layout.js (package.json "build").
 */
export const installRoot: string = installRootOf(fileURLToPath(import.meta.url));

/** The parent of the innermost dist/ or src/ directory above a module file. */
export function installRootOf(moduleFile: string): string {
  for (let dir = path.dirname(moduleFile); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const name = path.basename(dir);
    if (name === 'dist' || name === 'src') return path.dirname(dir);
  }
  return path.resolve(path.dirname(moduleFile), '..');
}

export interface LayoutEnv {
  K8S_ROOT?: string;
  SNAP?: string;
  SNAP_COMMON?: string;
  SNAP_DATA?: string;
  K8S_COMPONENT_CACHE?: string;
  XDG_CACHE_HOME?: string;
  HOME?: string;
  K8S_FIPS?: string;
  K8S_GOFIPS140?: string;
  /** Set by k8sd and the CLI once they run on the host FIPS provider (see k8sd/runtime.ts). */
  K8S_FIPS_RUNTIME?: string;
}

/** Components written in Go: in FIPS mode they must carry Go's FIPS 140-3 module. */
export const GO_COMPONENTS: ReadonlySet<string> = new Set(['etcd', 'kubernetes', 'containerd', 'runc', 'cni', 'flannel', 'coredns', 'local-path-provisioner', 'metrics-server', 'gobgp', 'traefik']);
/** The Go Cryptographic Module version the recipes build FIPS variants with (GOFIPS140). */
export const DEFAULT_GOFIPS140 = 'v1.0.0';

export class Layout {
  readonly root: string;
  readonly snap: string;
  readonly snapCommon: string;
  readonly inSnap: boolean;
  /**
   * GOFIPS140 setting the Go components are built with (snap/components/lib.sh: v1.0.0 unless
   * K8S_GOFIPS140 is set; empty means none). Outside a snap it selects the recipes'
   * `<version>-fips140-<setting>` cache entry.
   */
  readonly goFips140: string | undefined;
  /** FIPS mode: the Go components must carry the FIPS module and run with fips140=on. */
  fipsMode: boolean;
  private readonly env: LayoutEnv;

  constructor(env: LayoutEnv = process.env) {
    this.env = env;
    this.root = path.resolve(env.K8S_ROOT || '/');
    this.inSnap = Boolean(env.SNAP && env.SNAP_COMMON);
    this.snap = env.SNAP || installRoot;
    this.snapCommon = this.inSnap && !env.K8S_ROOT ? env.SNAP_COMMON! : this.host('/var/snap/k8s/common');
    this.goFips140 = (env.K8S_GOFIPS140 ?? DEFAULT_GOFIPS140) || undefined;
    this.fipsMode = env.K8S_FIPS_RUNTIME === '1';
  }

  /** Re-roots an absolute host path under K8S_ROOT. */
  host(absolute: string): string {
    return path.join(this.root, absolute);
  }

  common(...parts: string[]): string {
    return path.join(this.snapCommon, ...parts);
  }

  // Kubernetes configuration and PKI (same place as the upstream snap).
  get kubernetesDir(): string { return this.host('/etc/kubernetes'); }
  get pkiDir(): string { return path.join(this.kubernetesDir, 'pki'); }
  pki(file: string): string { return path.join(this.pkiDir, file); }
  kubeconfig(name: string): string { return path.join(this.kubernetesDir, name); }

  // Service arguments and config files.
  get argsDir(): string { return this.common('args'); }
  args(service: string): string { return path.join(this.argsDir, service); }
  get confDir(): string { return this.common('args', 'conf.d'); }
  /** The security-critical flags this node's args files weaken, accepted by the operator (k8s status, CIS run). */
  get acceptedInsecureArgsFile(): string { return this.common('args', 'accepted-insecure-args.json'); }
  conf(file: string): string { return path.join(this.confDir, file); }
  get etcDir(): string { return this.common('etc'); }

  // k8sd state.
  get k8sdStateDir(): string { return this.common('var', 'lib', 'k8sd', 'state'); }
  get controlSocket(): string { return path.join(this.k8sdStateDir, 'control.socket'); }
  get nodeStateFile(): string { return path.join(this.k8sdStateDir, 'node.json'); }
  get k8sdPidFile(): string { return path.join(this.k8sdStateDir, 'k8sd.pid'); }
  get clusterCert(): string { return path.join(this.k8sdStateDir, 'cluster.crt'); }
  get clusterKey(): string { return path.join(this.k8sdStateDir, 'cluster.key'); }
  /** Node's OpenSSL config for the FIPS provider (written by k8sd in FIPS mode). */
  get fipsRuntimeDir(): string { return path.join(this.k8sdStateDir, 'fips'); }
  /** Names of certificates the user supplied (externally managed: never re-signed by k8sd). */
  get externalCertsFile(): string { return path.join(this.k8sdStateDir, 'external-certificates.json'); }

  // Datastore.
  get etcdDataDir(): string { return this.common('var', 'lib', 'etcd', 'data'); }
  /** Encrypted etcd snapshots of this node (`k8s snapshot save`, the schedule): 0700, files 0600. */
  get snapshotsDir(): string { return this.common('var', 'lib', 'k8sd', 'snapshots'); }
  /** Control-plane nodes only: the key that seals etcd snapshots (src/snapshots/key.ts). Never in a snapshot. */
  get snapshotKeyFile(): string { return path.join(this.k8sdStateDir, 'snapshot-key.json'); }

  // Logs: one per process.
  get logDir(): string { return this.common('var', 'log'); }
  log(name: string): string { return path.join(this.logDir, `${name}.log`); }
  get auditLogDir(): string { return this.host('/var/log/kubernetes'); }

  // Runtime files of services (pid files, sockets).
  get runDir(): string { return this.common('run'); }

  // Worker components.
  get imagesDir(): string { return this.common('images'); }
  get kubeletRootDir(): string { return this.host('/var/lib/kubelet'); }
  get containerdConfigDir(): string { return this.host('/etc/containerd'); }
  get containerdRootDir(): string { return this.host('/var/lib/containerd'); }
  get containerdStateDir(): string { return this.host('/run/containerd'); }
  get containerdSocket(): string { return path.join(this.containerdStateDir, 'containerd.sock'); }
  get cniBinDir(): string { return this.host('/opt/cni/bin'); }
  get cniConfDir(): string { return this.host('/etc/cni/net.d'); }
  get containerdConfigFile(): string { return path.join(this.containerdConfigDir, 'config.toml'); }
  /** runc's state (--root), per node so that several nodes on one host never share it. */
  get runcRootDir(): string { return path.join(this.containerdStateDir, 'runc'); }
  /** host-local IPAM leases. */
  get cniStateDir(): string { return this.host('/var/lib/cni'); }
  get podLogsDir(): string { return this.host('/var/log/pods'); }
  /**
   * The kubelet's cgroup root: the host's root cgroup for a node that owns the host, one of its own
   * for each node under another K8S_ROOT (several nodes on one host never share pod cgroups).
   */
  get kubeletCgroupRoot(): string | undefined {
    if (this.root === '/') return undefined;
    return `/k8s-${createHash('sha256').update(this.root).digest('hex').slice(0, 12)}`;
  }
  /** Where the kubelet's pods live in the cgroup tree (under its cgroup root). */
  get podCgroupDir(): string { return path.posix.join(this.kubeletCgroupRoot ?? '/', 'kubepods'); }
  /** Where the upstream kubelet links container logs whatever its flags say (see docs/multi-node.md). */
  get containerLogLinksDir(): string { return '/var/log/containers'; }
  /** Every directory a node writes under its root; a reset removes them all. */
  get nodeDirs(): string[] {
    return [
      this.snapCommon,
      this.kubernetesDir,
      this.auditLogDir,
      this.kubeletRootDir,
      this.containerdConfigDir,
      this.containerdRootDir,
      this.containerdStateDir,
      this.cniBinDir,
      this.cniConfDir,
      this.cniStateDir,
      this.podLogsDir,
    ];
  }
  /** flanneld's network config and the subnet file it writes for this node. */
  get flannelConfFile(): string { return this.conf(GENERATED_CONF_FILES.flannelNetConf); }
  get flannelSubnetFile(): string { return path.join(this.runDir, 'flannel', 'subnet.env'); }

  // Membership: the cluster members this node trusts on the cluster API (cached for when the datastore is gone).
  get peersFile(): string { return path.join(this.k8sdStateDir, 'peers.json'); }
  /** Control-plane nodes only: the key that wraps CA keys in the datastore (src/pki/key-wrap.ts). */
  get pkiWrappingKeyFile(): string { return path.join(this.k8sdStateDir, 'pki-wrapping-key.json'); }

  /** Root of the component build cache: outside the repo, keyed by component and version. */
  get componentCacheRoot(): string {
    const env = this.env;
    return env.K8S_COMPONENT_CACHE || path.join(env.XDG_CACHE_HOME || path.join(env.HOME || homedir(), '.cache'), 'k8s-ts', 'components');
  }

  /** Pinned version of a component, from its recipe under snap/components/. */
  componentVersion(component: string): string {
    const file = path.join(installRoot, 'snap', 'components', component, 'version');
    return readFileSync(file, 'utf8').trim();
  }

  /**
   * Path of a component binary: $SNAP/bin in a snap, otherwise the recipe's cached build output.
   * `component` is the recipe name (kubernetes, etcd, containerd, ...), `binary` the executable.
   */
  componentBinary(component: string, binary: string): string {
    // CNI plugins have a directory of their own in the snap (k8sd links all of it into cniBinDir).
    if (this.inSnap) return path.join(this.snap, ...(component === 'cni' ? ['opt', 'cni', 'bin'] : ['bin']), binary);
    // Our own launchers (k8s-apiserver-proxy) live in the install's bin/.
    if (component === 'k8s') return path.join(installRoot, 'bin', binary);
    return path.join(this.componentCacheRoot, component, this.componentCacheKey(component), 'bin', binary);
  }

  /** Cache entry of a component recipe: its version, plus the GOFIPS140 suffix for Go components (as lib.sh's cache_version). */
  componentCacheKey(component: string): string {
    const version = this.componentVersion(component);
    return this.goFips140 && GO_COMPONENTS.has(component) ? `${version}-fips140-${this.goFips140}` : version;
  }

  /** How to build a missing component binary, or one without the FIPS module in FIPS mode. */
  componentBuildHint(component: string): string {
    if (this.inSnap) return `reinstall the k8s snap${this.fipsMode ? ` (its Go components are built with GOFIPS140=${DEFAULT_GOFIPS140})` : ''}`;
    const fips = this.fipsMode && !this.goFips140 && GO_COMPONENTS.has(component) ? `K8S_GOFIPS140=${DEFAULT_GOFIPS140} ` : '';
    return `build it with ${fips}bash snap/components/build-all.sh ${component}`;
  }

  /**
   * GODEBUG for the Go components: fips140=on in FIPS mode; fips140=off otherwise when they carry
   * the FIPS module (whose builds default to on). Other settings in `base` are kept.
   */
  goDebug(base = ''): string {
    const kept = base.split(',').map((s) => s.trim()).filter((s) => s && !s.startsWith('fips140='));
    const fips = this.fipsMode ? 'fips140=on' : this.goFips140 ? 'fips140=off' : undefined;
    return [...kept, ...(fips ? [fips] : [])].join(',');
  }

  componentBuilt(component: string, binary: string): boolean {
    return existsSync(this.componentBinary(component, binary));
  }
}
