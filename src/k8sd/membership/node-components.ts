// The node components k8sd runs on a worker: containerd (with runc and the CNI plugins),
// k8s-apiserver-proxy, kubelet and kube-proxy. Their files, start order, image side-loading
// and a clean stop that leaves no containers or mounts behind.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, lstatSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { FileSpec, removeFiles } from '../../host/files.js';
import { Host } from '../../services/host.js';
import { Layout } from '../../layout.js';
import { ClusterConfig, featuresOf } from '../../datastore/state.js';
import { FEATURE_IMAGES } from '../features/manifests.js';
import { Logger } from '../../log.js';
import { ArgOverrides, mergeArgs, readArgsFile, renderArgsFile } from '../../services/args.js';
import { NodeRole, serviceIds, servicesFor } from '../../services/registry.js';
import {
  containerdConfig,
  containerdPath,
  flanneldArgs,
  kubeletConfigPath,
  mergeToml,
  NODE_ARG_BUILDERS,
  NodeServiceContext,
  NodeServiceId,
  FlannelContext,
  renderFlanneldEnv,
  renderFlannelNetConf,
  renderKubeletConfig,
  renderToml,
} from '../../services/worker-specs.js';
import { crashWatch } from '../controlplane.js';
import { verifyComponentChecksum } from '../../services/binaries.js';

const CAP_SYS_RESOURCE = 24n;

/** Whether this process may lower OOM scores (CAP_SYS_RESOURCE in its effective set). */
export function canLowerOomScores(statusText?: string): boolean {
  let text = statusText;
  try {
    text ??= readFileSync('/proc/self/status', 'utf8');
  } catch {
    return true;
  }
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(text);
  return !m || ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

/** Start order; stop runs the other way round. */
export function nodeServices(role: NodeRole): NodeServiceId[] {
  return serviceIds({ role, tier: 'node' }) as NodeServiceId[];
}

/** Binaries the node components need, as [component, binary]. */
export function nodeBinaries(role: NodeRole, network = false): Array<[string, string]> {
  return servicesFor({ role, tier: 'node', network }).flatMap((e) => e.binaries.map(([c, b]) => [c, b] as [string, string]));
}

/** Ports the node components listen on: [address, port, what]. */
export function nodePorts(role: NodeRole, apiserverPort: number): Array<[string, number, string]> {
  return servicesFor({ role, tier: 'node' }).flatMap((e) =>
    e.ports.map(([scope, port, what]) => [scope === 'any' ? '0.0.0.0' : '127.0.0.1', port === 'secure-port' ? apiserverPort : port, what] as [string, number, string]),
  );
}

/** The node components' context on a control-plane node, from the cluster config. */
export function controlPlaneNodeContext(l: Layout, node: { name: string; address: string }, cluster: ClusterConfig): NodeServiceContext {
  const features = featuresOf(cluster);
  return {
    layout: l,
    role: 'control-plane',
    nodeName: node.name,
    nodeAddress: node.address,
    podCidr: cluster.podCidr,
    serviceCidr: cluster.serviceCidr,
    clusterDomain: features.dns['cluster-domain'],
    ...(features.dns.enabled ? { dnsServiceIp: features.dns['service-ip'] } : {}),
    failCgroupV1: cluster.failCgroupV1,
    apiserverPort: cluster.securePort,
    restrictOomScoreAdj: !canLowerOomScores(),
    network: features.network.enabled,
    taints: cluster.controlPlaneTaints ?? [],
  };
}

/** Directories the node components fill at run time (removed on rollback and on leave). */
export function nodeRuntimeDirsOf(l: Layout): string[] {
  return [l.kubeletRootDir, l.containerdRootDir, l.containerdStateDir, l.cniStateDir, l.podLogsDir];
}

/** Args files, config files and the containerd environment of the node components. */
export function nodeComponentFiles(
  ctx: NodeServiceContext,
  extraArgs: Partial<Record<string, ArgOverrides>>,
  containerdExtra: Record<string, unknown>,
  inheritedPath: string = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
): FileSpec[] {
  const l = ctx.layout;
  const files: FileSpec[] = serviceIds({ role: ctx.role, tier: 'node', network: false }).map((svc) => ({
    path: l.args(svc),
    content: renderArgsFile(mergeArgs(NODE_ARG_BUILDERS[svc as NodeServiceId](ctx), extraArgs[svc])),
    mode: 0o600,
  }));
  if (ctx.network) files.push(...networkFiles(ctx));
  files.push(
    { path: l.args('containerd-env'), content: `PATH=${containerdPath(l, inheritedPath)}\n`, mode: 0o600 },
    { path: l.containerdConfigFile, content: renderToml(mergeToml(containerdConfig(ctx), containerdExtra)), mode: 0o600 },
    { path: kubeletConfigPath(l), content: renderKubeletConfig(ctx), mode: 0o600 },
  );
  return files;
}

/** flanneld's args, environment and network config (present exactly while the network feature is on). */
export function networkFiles(ctx: FlannelContext): FileSpec[] {
  const l = ctx.layout;
  return [
    { path: l.args('flanneld'), content: renderArgsFile(flanneldArgs(ctx)), mode: 0o600 },
    { path: l.args('flanneld-env'), content: renderFlanneldEnv(ctx), mode: 0o600 },
    { path: l.flannelConfFile, content: renderFlannelNetConf(ctx.podCidr), mode: 0o644 },
  ];
}

/**
 * Whether this node routes to `ip` (the kubernetes Service address). Host-network pods (the
 * NetworkPolicy enforcer) reach Services through kube-proxy only when some route covers the
 * service CIDR, usually the default route.
 */
export async function routesTo(ip: string): Promise<boolean> {
  const r = await execa('ip', ['route', 'get', ip], { reject: false });
  return r.exitCode === 0;
}

/** Kernel settings pod networking needs in this node's network namespace. */
export function enablePodForwarding(log: Logger): void {
  const settings: Array<[string, string]> = [
    ['/proc/sys/net/ipv4/ip_forward', '1'],
    ['/proc/sys/net/ipv6/conf/all/forwarding', '1'],
    // Bridged pod traffic must pass netfilter: kube-proxy's Service rules and NetworkPolicy see it there.
    ['/proc/sys/net/bridge/bridge-nf-call-iptables', '1'],
    ['/proc/sys/net/bridge/bridge-nf-call-ip6tables', '1'],
  ];
  for (const [file, value] of settings) {
    try {
      if (readFileSync(file, 'utf8').trim() !== value) writeFileSync(file, value);
    } catch (err) {
      log.warn('could not set a kernel setting pod networking needs', { file, value, error: (err as Error).message });
    }
  }
}

/**
 * Kernel limits a node's containerd and kubelet need, raised (never lowered) when the host's are
 * below: each containerd, kubelet and pod with a file watcher holds inotify instances, and the
 * usual default of 128 per user runs out with a few nodes on one machine (containerd's CRI plugin
 * then fails to load with "too many open files"). These are global to the kernel.
 */
export const KERNEL_MINIMUMS: ReadonlyArray<readonly [string, number]> = [
  ['/proc/sys/fs/inotify/max_user_instances', 1024],
  ['/proc/sys/fs/inotify/max_user_watches', 524288],
];

export function raiseKernelLimits(log: Logger, minimums = KERNEL_MINIMUMS): void {
  for (const [file, minimum] of minimums) {
    try {
      const current = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(current) && current >= minimum) continue;
      writeFileSync(file, String(minimum));
      log.info('raised a kernel limit the node needs', { file, from: current, to: minimum });
    } catch (err) {
      log.warn('could not raise a kernel limit the node needs', { file, minimum, error: (err as Error).message });
    }
  }
}

/** Whether containerd serves the CRI API (the kubelet cannot start without it); the plugin's error when it does not. */
async function criStatus(l: Layout): Promise<{ ok: boolean; error?: string }> {
  const r = await ctr(l, ['plugins', 'ls', 'id==cri'], 10_000);
  if (r.exitCode !== 0) return { ok: false };
  const line = String(r.stdout).split('\n').find((x) => x.startsWith('io.containerd.grpc.v1'));
  const status = line?.trim().split(/\s+/).pop();
  if (status === 'ok') return { ok: true };
  if (status !== 'error') return { ok: false };
  const detail = await ctr(l, ['plugins', 'ls', '--detailed', 'id==cri'], 10_000);
  return { ok: false, error: /Error:\s*(.*)/.exec(String(detail.stdout))?.[1]?.trim() || 'the CRI plugin failed to load' };
}

/** The CNI plugins, linked into the node's CNI bin dir (containerd looks there). */
export function linkCniPlugins(l: Layout): void {
  mkdirSync(l.cniBinDir, { recursive: true, mode: 0o755 });
  const src = path.dirname(l.componentBinary('cni', 'bridge'));
  for (const plugin of readdirSync(src)) {
    const target = path.join(l.cniBinDir, plugin);
    const want = path.join(src, plugin);
    try {
      if (lstatSync(target).isSymbolicLink() && readlinkSync(target) === want) continue;
      rmSync(target, { force: true });
    } catch {
      // absent
    }
    symlinkSync(want, target);
  }
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>, isAlive: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    const dead = await isAlive();
    if (dead) throw new Error(dead);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up within ${Math.round(timeoutMs / 1000)} s; see its log`);
}

/** containerd's CRI reports an image with this label as pinned; kubelet's image GC skips pinned images. */
export const CRI_PINNED_LABEL = 'io.cri-containerd.pinned';

function ctr(l: Layout, args: string[], timeoutMs = 60_000) {
  return execa(l.componentBinary('containerd', 'ctr'), ['--address', l.containerdSocket, '--namespace', 'k8s.io', ...args], { reject: false, timeout: timeoutMs });
}

/** OCI archives to side-load: $SNAP_COMMON/images/*.tar, plus (outside a snap) the pause and feature images from their component builds. */
export function imageArchives(l: Layout): string[] {
  const out = existsSync(l.imagesDir) ? readdirSync(l.imagesDir).filter((f) => f.endsWith('.tar')).sort().map((f) => path.join(l.imagesDir, f)) : [];
  const built: Array<readonly [string, string]> = [['pause', 'pause.tar'], ...Object.values(FEATURE_IMAGES)];
  for (const [component, archive] of built) {
    if (!out.some((f) => path.basename(f) === archive) && !l.inSnap && l.componentBuilt(component, archive)) {
      // Every pod runs the pause image: an archive changed in the cache is refused like a binary.
      verifyComponentChecksum(l, component, l.componentBinary(component, archive));
      out.push(l.componentBinary(component, archive));
    }
  }
  return out;
}

/**
 * Archives a node can start without: the images of every feature but dns. They load in the
 * background, so the kubelet starts without waiting for them; a feature enabled right away finds its
 * image a few seconds later (its pod waits: ErrImageNeverPull, retried). The sandbox image, CoreDNS
 * and any other archive (an operator's own, in the images directory) load first.
 */
const DEFERRED_ARCHIVES: ReadonlySet<string> = new Set(Object.entries(FEATURE_IMAGES).filter(([name]) => name !== 'coredns').map(([, [, archive]]) => archive));

async function importArchive(l: Layout, log: Logger, file: string): Promise<void> {
  const started = Date.now();
  // Pinned: kubelet's image garbage collection (at imageGCHighThresholdPercent of the disk) never
  // removes a pinned image, and these cannot be pulled back (imagePullPolicy Never, no registry).
  const r = await ctr(l, ['images', 'import', '--label', `${CRI_PINNED_LABEL}=pinned`, file], 120_000);
  if (r.exitCode !== 0) {
    log.error('could not side-load an image archive', { file, error: String(r.stderr).trim().slice(-300) });
    return;
  }
  log.info('side-loaded image archive', { file, ms: Date.now() - started });
}

/** When the archives a node can start without load: those `soon` right away, the others after `laterAfter` (skipped when it gives false). */
export interface DeferredImages {
  soon(archive: string): boolean;
  laterAfter: Promise<boolean>;
}

/**
 * Side-loads what the node needs to start, then returns; `rest` settles when the other archives are
 * in. They load right away unless `deferred` says otherwise.
 */
export async function sideLoadImages(l: Layout, log: Logger, deferred?: DeferredImages): Promise<{ rest: Promise<void> }> {
  const files = imageArchives(l);
  const later = files.filter((f) => DEFERRED_ARCHIVES.has(path.basename(f)));
  for (const file of files.filter((f) => !later.includes(f))) await importArchive(l, log, file);
  const soon = deferred ? later.filter((f) => deferred.soon(path.basename(f))) : later;
  const rest = (async () => {
    for (const file of soon) await importArchive(l, log, file);
    const last = later.filter((f) => !soon.includes(f));
    if (last.length && deferred && !(await deferred.laterAfter)) return;
    for (const file of last) await importArchive(l, log, file);
  })();
  return { rest };
}

/**
 * Makes the kubelet's cgroup root exist (the kubelet refuses a missing one): in every controller
 * hierarchy on cgroup v1, once in the unified tree on v2 (the kubelet's cgroup manager enables the
 * controllers it needs on the way down).
 */
function ensureCgroupRoot(host: Host): void {
  // The args file, not the layout: an operator's extra-node-kubelet-args may name another root.
  const root = readArgsFile(host.layout.args('kubelet'))['cgroup-root'];
  if (!root || root === '/') return;
  const hierarchies = host.cgroupVersion() === 2 ? ['/sys/fs/cgroup'] : readdirSync('/sys/fs/cgroup').filter((c) => c !== 'unified').map((c) => path.join('/sys/fs/cgroup', c));
  for (const dir of hierarchies) {
    try {
      mkdirSync(path.join(dir, root), { recursive: true });
    } catch {
      // not a controller hierarchy
    }
  }
}

export async function startNodeComponents(host: Host, log: Logger, role: 'control-plane' | 'worker', timeoutMs: number): Promise<void> {
  await prepareContainerd(host, log, timeoutMs);
  await startNodeServices(host, role);
}

/**
 * The part of the node components that needs no cluster: containerd running with its CRI plugin and
 * the bundled images imported. Bootstrap runs it while kube-apiserver starts (issue 17); `deferred`
 * says when the images the node can start without load (see sideLoadImages).
 */
export async function prepareContainerd(host: Host, log: Logger, timeoutMs: number, deferred?: DeferredImages): Promise<void> {
  const l = host.layout;
  linkCniPlugins(l);
  for (const dir of [l.cniConfDir, l.cniStateDir, l.kubeletRootDir, l.podLogsDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  enablePodForwarding(log);
  raiseKernelLimits(log);
  await host.services.start('containerd');
  await waitFor('containerd', timeoutMs, () => socketAnswers(l.containerdSocket), crashWatch(host, 'containerd', l.log('containerd')));
  let cri = await criStatus(l);
  if (!cri.ok && cri.error) {
    // A plugin that failed at start-up stays failed: one restart, once the cause may be gone.
    log.warn("containerd's CRI plugin did not load; restarting containerd once", { error: cri.error });
    await host.services.restart('containerd');
    await waitFor('containerd', timeoutMs, () => socketAnswers(l.containerdSocket), crashWatch(host, 'containerd', l.log('containerd')));
    cri = await criStatus(l);
    if (!cri.ok && cri.error) throw new Error(`containerd runs without its CRI plugin, so the kubelet cannot start: ${cri.error}; see ${l.log('containerd')}`);
  }
  // Not awaited: the node starts while the images of features that are off load.
  void (await sideLoadImages(l, log, deferred)).rest;
}

/** The kubelet, kube-proxy and flanneld, once containerd is prepared. */
export async function startNodeServices(host: Host, role: 'control-plane' | 'worker'): Promise<void> {
  const l = host.layout;
  ensureCgroupRoot(host);
  // flanneld runs while the network feature is on, which its args file says.
  for (const svc of nodeServices(role).filter((s) => s !== 'containerd' && (s !== 'flanneld' || existsSync(l.args('flanneld'))))) await host.services.start(svc);
}

/** Stops the node components and removes every container they ran. */
export async function stopNodeComponents(host: Host, log: Logger, role: 'control-plane' | 'worker'): Promise<void> {
  const l = host.layout;
  for (const svc of nodeServices(role).filter((s) => s !== 'containerd').reverse()) await host.services.stop(svc);
  if (await socketAnswers(l.containerdSocket)) {
    const tasks = await ctr(l, ['tasks', 'ls', '-q']);
    const ids = String(tasks.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
    for (const id of ids) await ctr(l, ['tasks', 'kill', '--signal', 'SIGKILL', id], 10_000);
    for (const id of ids) await ctr(l, ['tasks', 'delete', '--force', id], 20_000);
    const containers = await ctr(l, ['containers', 'ls', '-q']);
    for (const id of String(containers.stdout ?? '').split('\n').map((s) => s.trim()).filter(Boolean)) await ctr(l, ['containers', 'delete', id], 10_000);
    if (ids.length) log.info('removed the containers of this node', { count: ids.length });
  }
  await host.services.stop('containerd');
}

/** Undoes startNodeComponents: stops the components and removes their containers, mounts and runtime dirs. */
export async function removeNodeComponents(host: Host, log: Logger, role: NodeRole): Promise<void> {
  await stopNodeComponents(host, log, role);
  await unmountUnder(nodeRuntimeDirsOf(host.layout), log);
  removeFiles(nodeRuntimeDirsOf(host.layout));
}

/** Unmounts everything mounted under the given directories (pod volumes, sandbox netns and shm, rootfs). */
export async function unmountUnder(dirs: string[], log: Logger): Promise<void> {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return;
  }
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const roots = dirs.map((d) => path.resolve(d) + '/');
  const points = text
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((p) => p && roots.some((r) => (p + '/').startsWith(r)))
    .sort((a, b) => b.length - a.length);
  for (const p of [...new Set(points)]) {
    const r = await execa('umount', ['-l', p], { reject: false });
    if (r.exitCode !== 0) log.warn('could not unmount', { path: p, error: r.stderr.trim() });
  }
}
