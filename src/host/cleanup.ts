// Removes everything a node left on the host once its k8sd and services are stopped: pod
// processes, mounts, cgroups, container log links, containerd shim sockets, network state and
// the node's directories. `npm run reset` and the snap's remove hook (`k8s x-cleanup`) run it.
import { execa } from 'execa';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Layout } from '../layout.js';
import { installAdvice } from '../install.js';
import { readArgsFile } from './args-file.js';
import { hostCgroupVersion, readProcFile } from './host.js';

export class CleanupRefused extends Error {
  override name = 'CleanupRefused';
}

export interface CleanupReport {
  killed: number[];
  unmounted: string[];
  cgroupsRemoved: string[];
  removed: string[];
  /** What could not be cleaned, each with the reason. */
  left: string[];
}

const CGROUP_FS = '/sys/fs/cgroup';
/** The iptables chains the node's components own: kube-proxy, flanneld, the CNI portmap plugin, k8sd's NetworkPolicy rules. */
export const OWNED_CHAIN_PREFIXES = ['KUBE-', 'FLANNEL-', 'CNI-', 'K8SD-NP'];
/** Interfaces the network feature creates on a node. */
const OWNED_LINKS = ['flannel.1', 'cni0'];

/** True when path is inside dir (not dir itself). */
export function isUnder(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function isAtOrUnder(p: string, dir: string): boolean {
  return p === dir || isUnder(p, dir);
}

/** Mount points of a /proc/<pid>/mountinfo text, octal escapes decoded. */
export function mountPoints(mountinfo: string): string[] {
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((mp): mp is string => Boolean(mp))
    .map((mp) => mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** The mount points a reset must take away, deepest first: under the root, or under the node's directories on `/`. */
export function mountsToRemove(mountinfo: string, l: Layout): string[] {
  const dirs = l.root === '/' ? l.nodeDirs : [l.root];
  const picked = mountPoints(mountinfo).filter((mp) => dirs.some((d) => (l.root === '/' ? isAtOrUnder(mp, d) : isUnder(mp, d))));
  return [...new Set(picked)].sort((a, b) => b.length - a.length);
}

/**
 * An iptables-save text without the chains the node owns and without every rule that is in them or
 * jumps to them; `iptables-restore` of the result (one table at a time) leaves everything else as it was.
 */
export function withoutOwnedChains(save: string, prefixes: string[] = OWNED_CHAIN_PREFIXES): { text: string; changed: boolean } {
  const owned = (chain: string | undefined): boolean => Boolean(chain && prefixes.some((p) => chain.startsWith(p)));
  let changed = false;
  const kept = save.split('\n').filter((line) => {
    let drop = false;
    if (line.startsWith(':')) drop = owned(line.slice(1).split(' ')[0]);
    else if (line.startsWith('-A ')) {
      const words = line.split(/\s+/);
      const target = words[words.indexOf('-j') + 1] ?? words[words.indexOf('-g') + 1];
      drop = owned(words[1]) || (words.includes('-j') && owned(words[words.indexOf('-j') + 1])) || (words.includes('-g') && owned(target));
    }
    if (drop) changed = true;
    return !drop;
  });
  return { text: kept.join('\n'), changed };
}

function alive(pid: number): boolean {
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  if (state !== 'Z' && state !== 'X') return true;
  try {
    return readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

function pids(): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number);
}

function cmdline(pid: number): string[] {
  return (readProcFile(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean);
}

function ancestry(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    const ppid = /^PPid:\s+(\d+)/m.exec(readProcFile(`/proc/${pid}/status`) ?? '')?.[1];
    pid = ppid ? Number(ppid) : 0;
  }
  return out;
}

/** Cgroup directories of the node: its own cgroup root off `/`, the kubelet's pods on `/`. */
function nodeCgroupDirs(l: Layout): string[] {
  // The args file first: an operator's extra-node-kubelet-args may name another cgroup root.
  const configured = readArgsFile(l.args('kubelet'))['cgroup-root'];
  const own = configured && configured !== '/' ? configured : l.kubeletCgroupRoot;
  const rel = (own ?? l.podCgroupDir).replace(/^\//, '');
  if (hostCgroupVersion() === 2) return [path.join(CGROUP_FS, rel)];
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(CGROUP_FS).map((h) => path.join(CGROUP_FS, h));
  } catch {
    return [];
  }
  return hierarchies.map((h) => path.join(h, rel)).filter((d) => existsSync(d));
}

function cgroupProcesses(dir: string): number[] {
  const out = new Set<number>();
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name === 'cgroup.procs') for (const p of (readProcFile(path.join(d, e.name)) ?? '').split('\n')) if (/^\d+$/.test(p)) out.add(Number(p));
    }
  };
  walk(dir);
  return [...out];
}

/** Unix socket paths a process holds (its fds matched against its network namespace's socket table). */
function unixSocketPaths(pid: number): string[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`) ?? '');
      if (m) inodes.add(m[1]);
    }
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of (readProcFile(`/proc/${pid}/net/unix`) ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && inodes.has(f[6]) && f[7].startsWith('/')) out.push(f[7]);
  }
  return out;
}

function readlinkSafe(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

async function killAll(targets: number[], report: CleanupReport): Promise<void> {
  const live = targets.filter(alive);
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (live.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of live) {
    if (alive(pid)) report.left.push(`process ${pid}: still alive after SIGKILL`);
    else report.killed.push(pid);
  }
}

/** The node's processes k8sd does not stop: pods, containerd shims and, off `/`, anything naming the root. */
function leftoverProcesses(l: Layout): { pids: number[]; shimSockets: string[] } {
  const mine = ancestry();
  const found = new Set<number>();
  for (const dir of nodeCgroupDirs(l)) for (const pid of cgroupProcesses(dir)) found.add(pid);
  const shimSockets: string[] = [];
  for (const pid of pids()) {
    if (mine.has(pid)) continue;
    const args = cmdline(pid);
    const isShim = args.some((a, i) => a === '-address' && args[i + 1] === l.containerdSocket);
    if (isShim) {
      found.add(pid);
      shimSockets.push(...unixSocketPaths(pid).filter((s) => !isUnder(s, l.root === '/' ? l.containerdStateDir : l.root)));
      continue;
    }
    if (l.root !== '/') {
      const env = readProcFile(`/proc/${pid}/environ`) ?? '';
      if (args.some((a) => a === l.root || a.includes(`${l.root}/`)) || env.split('\0').includes(`K8S_ROOT=${l.root}`)) found.add(pid);
    }
  }
  for (const pid of mine) found.delete(pid);
  return { pids: [...found], shimSockets };
}

function inOwnNetns(): boolean {
  return readlinkSafe('/proc/self/ns/net') !== readlinkSafe('/proc/1/ns/net');
}

async function cleanNetwork(report: CleanupReport): Promise<void> {
  for (const link of OWNED_LINKS) {
    const r = await execa('ip', ['link', 'del', link], { reject: false });
    if (r.exitCode === 0) report.removed.push(`link ${link}`);
  }
  for (const [save, restore] of [['iptables-save', 'iptables-restore'], ['ip6tables-save', 'ip6tables-restore']] as const) {
    for (const table of ['filter', 'nat', 'mangle', 'raw']) {
      const saved = await execa(save, ['-t', table], { reject: false });
      if (saved.exitCode !== 0 || !saved.stdout.trim()) continue;
      const { text, changed } = withoutOwnedChains(saved.stdout);
      if (!changed) continue;
      const r = await execa(restore, ['-T', table], { input: `${text}\n`, reject: false });
      if (r.exitCode === 0) report.removed.push(`${save.replace('-save', '')} ${table} chains ${OWNED_CHAIN_PREFIXES.join(' ')}`);
      else report.left.push(`${table} table rules: ${restore} failed: ${r.stderr.trim()}`);
    }
  }
}

function removeCgroupTree(dir: string, report: CleanupReport): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
  } catch {
    return;
  }
  for (const child of entries) removeCgroupTree(child, report);
  try {
    rmdirSync(dir);
    report.cgroupsRemoved.push(dir);
  } catch (err) {
    report.left.push(`cgroup ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function removeEmptyParents(dir: string, stopAt: string): void {
  let d = path.dirname(dir);
  while (isUnder(d, stopAt)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    d = path.dirname(d);
  }
}

/**
 * Cleans a stopped node. Refuses while its k8sd runs. Network state (links, iptables chains) is
 * cleaned only for a node that owns its network namespace: the host's on `/`, its own otherwise
 * (a re-rooted node in the host namespace would share it with the host's node).
 */
export async function cleanupNode(l: Layout): Promise<CleanupReport> {
  const report: CleanupReport = { killed: [], unmounted: [], cgroupsRemoved: [], removed: [], left: [] };
  const k8sdPid = Number((readProcFile(l.k8sdPidFile) ?? '').trim());
  if (k8sdPid > 0 && alive(k8sdPid) && cmdline(k8sdPid).some((a) => a.includes('k8sd'))) {
    throw new CleanupRefused(`k8sd is still running (pid ${k8sdPid}); stop it first (${installAdvice(l).stopK8sd}) and run the cleanup again`);
  }

  const { pids: leftovers, shimSockets } = leftoverProcesses(l);
  await killAll(leftovers, report);

  for (const mp of mountsToRemove(readFileSync('/proc/self/mountinfo', 'utf8'), l)) {
    const r = await execa('umount', ['--lazy', mp], { reject: false });
    if (r.exitCode === 0) report.unmounted.push(mp);
    else report.left.push(`mount ${mp}: ${r.stderr.trim()}`);
  }

  for (const dir of nodeCgroupDirs(l)) removeCgroupTree(dir, report);

  try {
    for (const name of readdirSync(l.containerLogLinksDir)) {
      const link = path.join(l.containerLogLinksDir, name);
      const target = readlinkSafe(link);
      if (target && lstatSync(link).isSymbolicLink() && isUnder(path.resolve(l.containerLogLinksDir, target), l.podLogsDir)) {
        unlinkSync(link);
        report.removed.push(link);
      }
    }
  } catch {
    // no container log links on this host
  }
  for (const sock of shimSockets) {
    rmSync(sock, { force: true });
    report.removed.push(sock);
  }

  if (l.root === '/' || inOwnNetns()) await cleanNetwork(report);

  for (const dir of l.nodeDirs) {
    if (!existsSync(dir)) continue;
    try {
      rmSync(dir, { recursive: true, force: true });
      report.removed.push(dir);
      if (l.root !== '/') removeEmptyParents(dir, l.root);
    } catch (err) {
      report.left.push(`${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  return report;
}
