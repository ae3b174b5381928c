// The load-balancer feature's data plane, run by k8sd on every control-plane node while the feature
// is on (no pod, no image; see docs/features.md for why). Every 2 s, as the network identity
// (flannel.conf, user k8sd:network, bound to the feature's ClusterRole):
// - allocation: each Service of type LoadBalancer (no loadBalancerClass) without an address of the
//   pools gets the first free one in status.loadBalancer.ingress (replace with the resourceVersion
//   read, so two control-plane nodes never hand out one address twice);
// - L2 mode: the control-plane node elected for an address (electAnnouncer over the Ready
//   control-plane nodes) adds it as a host address (/32, /128) to its LAN interface, so the kernel
//   answers ARP/NDP for it; kube-proxy's rules for the Service's load-balancer IP take it from
//   there. A filter chain drops every packet to such an address that kube-proxy did not DNAT, so a
//   host service listening on 0.0.0.0 (kubelet, etcd, k8sd) is not reachable through it;
// - BGP mode: gobgpd (a child of k8sd, connecting out only, API on a 0700 unix socket) announces
//   every assigned address as a host route with this node as next hop.
import type { CoreV1Api, V1Node, V1Service } from '@kubernetes/client-node';
import { execa } from 'execa';
import { ResultPromise } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { addressRanges, AddressRange, electAnnouncer, gobgpdConfig, inPools, LoadBalancerSettings, nextFreeAddress } from '../../config/load-balancer.js';
import { writeFileAtomic } from '../../host/files.js';
import type { Layout } from '../../layout.js';
import { Logger } from '../../log.js';
import { loadKubeconfig } from '../kube.js';

const POLL_MS = 2000;
export const LB_INPUT_CHAIN = 'K8SD-LB-INPUT';
const CONTROL_PLANE_LABEL = 'node-role.kubernetes.io/control-plane';

/** A Service this feature serves: type LoadBalancer and no loadBalancerClass (those belong to another implementation). */
export function isOurService(s: V1Service): boolean {
  return s.spec?.type === 'LoadBalancer' && !s.spec.loadBalancerClass;
}

/** The addresses a Service holds in its status. */
function statusIps(s: V1Service): string[] {
  return (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).filter((ip): ip is string => Boolean(ip));
}

export interface Allocation {
  namespace: string;
  name: string;
  ip: string;
}

/**
 * Which Services need a new address and which one (pure). A Service keeps an address of the pools
 * it already has; a new one gets spec.loadBalancerIP when that is in the pools and free, else the
 * first free address. Services are served oldest first, so every control-plane node computes the
 * same answer. `pending` lists the Services left without one (pools exhausted, or a requested
 * address outside the pools or taken).
 */
export function planAllocations(services: V1Service[], ranges: AddressRange[]): { assign: Allocation[]; pending: string[] } {
  const ours = services.filter(isOurService).sort((a, b) => {
    const ta = new Date(a.metadata?.creationTimestamp ?? 0).getTime();
    const tb = new Date(b.metadata?.creationTimestamp ?? 0).getTime();
    return ta === tb ? String(a.metadata?.uid).localeCompare(String(b.metadata?.uid)) : ta - tb;
  });
  const taken = new Set<string>();
  for (const s of ours) for (const ip of statusIps(s)) if (inPools(ranges, ip)) taken.add(ip);
  const assign: Allocation[] = [];
  const pending: string[] = [];
  for (const s of ours) {
    if (statusIps(s).some((ip) => inPools(ranges, ip))) continue;
    const id = { namespace: s.metadata?.namespace ?? 'default', name: s.metadata?.name ?? '' };
    const wanted = s.spec?.loadBalancerIP;
    const family = s.spec?.ipFamilies?.[0] === 'IPv6' ? 6 : 4;
    let ip: string | undefined;
    if (wanted) ip = inPools(ranges, wanted) && !taken.has(wanted) ? wanted : undefined;
    else ip = nextFreeAddress(ranges, taken, family);
    if (!ip) {
      pending.push(`${id.namespace}/${id.name}`);
      continue;
    }
    taken.add(ip);
    assign.push({ ...id, ip });
  }
  return { assign, pending };
}

/** The Ready control-plane nodes, by name (the L2 announcers' electorate). */
export function eligibleNodes(nodes: V1Node[]): string[] {
  return nodes
    .filter((n) => n.metadata?.labels?.[CONTROL_PLANE_LABEL] !== undefined)
    .filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((n) => n.metadata?.name ?? '')
    .filter(Boolean)
    .sort();
}

/** The iptables-restore input of the guard chain for the addresses this node holds. */
export function guardRules(ips: string[]): string {
  const v4 = ips.filter((ip) => isIP(ip) === 4).sort();
  return ['*filter', `:${LB_INPUT_CHAIN} - [0:0]`, `-F ${LB_INPUT_CHAIN}`, ...v4.map((ip) => `-A ${LB_INPUT_CHAIN} -d ${ip}/32 -j DROP`), 'COMMIT', ''].join('\n');
}

interface IpAddr {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

async function run(cmd: string, args: string[], input?: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const r = await execa(cmd, args, { reject: false, ...(input !== undefined ? { input } : {}) });
  return { ok: r.exitCode === 0, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

export class LoadBalancerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadBalancerError';
  }
}

export class LoadBalancer {
  private timer?: NodeJS.Timeout;
  private busy = false;
  private settings?: LoadBalancerSettings;
  private core?: CoreV1Api;
  /** The last pass's error ('' when it succeeded), shown by `k8s status`. */
  lastError = '';
  private speaker?: { proc: ResultPromise; config: string };
  /** Pools of earlier settings: their host addresses are ours to remove too. */
  private formerPools: AddressRange[] = [];
  /** What the last pass saw, for `k8s status`. */
  summary = { assigned: 0, announced: 0, pending: [] as string[], bgpSession: '' };

  constructor(
    private readonly node: { name: string; address: string },
    private readonly layout: Layout,
    private readonly log: Logger,
  ) {}

  private get dir(): string {
    return path.join(this.layout.k8sdStateDir, 'load-balancer');
  }

  private get socket(): string {
    return path.join(this.dir, 'gobgp.sock');
  }

  /** Starts (or retunes) the loop with these settings. */
  configure(settings: LoadBalancerSettings): void {
    if (this.settings && JSON.stringify(this.settings.cidrs) !== JSON.stringify(settings.cidrs)) this.formerPools.push(...addressRanges(this.settings));
    this.settings = settings;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (!this.timer) {
      this.timer = setInterval(() => void this.sync(), POLL_MS);
      void this.sync();
    }
  }

  /** Stops the loop (k8sd stops): host addresses and rules stay, gobgpd exits with k8sd. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * The feature was disabled: stop, withdraw every address and route, clear the Services' status.
   * The status is cleared with `kubeconfig` (the feature controller's admin credentials): the
   * network identity's role goes with the feature's objects.
   */
  async remove(settings: LoadBalancerSettings | undefined, kubeconfig: string): Promise<void> {
    this.stop();
    await this.stopSpeaker();
    const pools = [...this.formerPools, ...(settings?.cidrs.length ? addressRanges(settings) : []), ...(this.settings ? addressRanges(this.settings) : [])];
    await this.syncHostAddresses([], pools);
    await run('iptables', ['-D', 'INPUT', '-j', LB_INPUT_CHAIN]);
    await run('iptables', ['-F', LB_INPUT_CHAIN]);
    await run('iptables', ['-X', LB_INPUT_CHAIN]);
    if (pools.length) {
      const { CoreV1Api: Core } = await import('../kube-api.js');
      const core = (await loadKubeconfig(kubeconfig)).makeApiClient(Core);
      const services = await core.listServiceForAllNamespaces();
      for (const s of services.items.filter(isOurService)) {
        if (!statusIps(s).some((ip) => inPools(pools, ip))) continue;
        s.status = { ...s.status, loadBalancer: {} };
        try {
          await core.replaceNamespacedServiceStatus({ name: s.metadata!.name!, namespace: s.metadata!.namespace!, body: s });
        } catch (err) {
          // 404: deleted meanwhile; 409: changed meanwhile, the next pass (the directory is still there) retries.
          const code = (err as { code?: number }).code;
          if (code === 409) throw new LoadBalancerError(`service ${s.metadata?.namespace}/${s.metadata?.name} changed while its address was released; retrying`);
          if (code !== 404) throw err;
        }
      }
    }
    // Last: while it exists, a later pass (or a restarted k8sd) finishes an interrupted removal.
    rmSync(this.dir, { recursive: true, force: true });
    this.settings = undefined;
    this.formerPools = [];
  }

  private async api(): Promise<CoreV1Api> {
    if (!this.core) {
      const { CoreV1Api: Core } = await import('../kube-api.js');
      this.core = (await loadKubeconfig(this.layout.kubeconfig('flannel.conf'))).makeApiClient(Core);
    }
    return this.core;
  }

  /** One pass; resolves when done. Errors are logged once and retried on the next pass. */
  async sync(): Promise<void> {
    const s = this.settings;
    if (this.busy || !s) return;
    this.busy = true;
    try {
      const ranges = addressRanges(s);
      const core = await this.api();
      const [services, nodes] = await Promise.all([core.listServiceForAllNamespaces(), core.listNode()]);
      const plan = planAllocations(services.items, ranges);
      for (const a of plan.assign) {
        const svc = services.items.find((x) => x.metadata?.namespace === a.namespace && x.metadata?.name === a.name)!;
        svc.status = { ...svc.status, loadBalancer: { ingress: [{ ip: a.ip, ipMode: 'VIP' }] } };
        try {
          await core.replaceNamespacedServiceStatus({ name: a.name, namespace: a.namespace, body: svc });
          this.log.info('load balancer address assigned', { service: `${a.namespace}/${a.name}`, ip: a.ip });
        } catch (err) {
          // 409: another control-plane node (or the user) changed it first; the next pass sees it.
          if ((err as { code?: number }).code !== 409) throw err;
        }
      }
      const assigned = services.items.filter(isOurService).flatMap((x) => statusIps(x)).filter((ip) => inPools(ranges, ip));
      for (const a of plan.assign) if (!assigned.includes(a.ip)) assigned.push(a.ip);
      const electorate = eligibleNodes(nodes.items);
      const mine = s['l2-mode'] ? assigned.filter((ip) => electAnnouncer(ip, electorate) === this.node.name) : [];
      await this.syncHostAddresses(mine, [...ranges, ...this.formerPools]);
      await this.syncGuard(mine);
      let session = '';
      if (s['bgp-mode']) session = await this.syncBgp(s, assigned);
      else await this.stopSpeaker();
      this.summary = { assigned: assigned.length, announced: mine.length, pending: plan.pending, bgpSession: session };
      this.lastError = '';
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.log.warn('load balancer sync failed; retrying', { error: msg });
      this.lastError = msg;
    } finally {
      this.busy = false;
    }
  }

  /** The interface announcements use: the first of l2-interfaces that exists, else the one holding the node's address. */
  private announceInterface(links: IpAddr[]): string {
    const wanted = this.settings?.['l2-interfaces'] ?? [];
    if (wanted.length) {
      const found = wanted.find((w) => links.some((l) => l.ifname === w));
      if (!found) throw new LoadBalancerError(`none of load-balancer.l2-interfaces (${wanted.join(', ')}) exists on node ${this.node.name}`);
      return found;
    }
    const own = links.find((l) => l.addr_info?.some((a) => a.local === this.node.address));
    if (!own) throw new LoadBalancerError(`no interface holds the node address ${this.node.address}; set load-balancer.l2-interfaces`);
    return own.ifname;
  }

  /** Host addresses of the pools on this node become exactly `want` (on the announce interface). */
  private async syncHostAddresses(want: string[], pools: AddressRange[]): Promise<void> {
    const r = await run('ip', ['-j', 'addr', 'show']);
    if (!r.ok) throw new LoadBalancerError(`ip addr show failed: ${r.stderr.trim()}`);
    const links = JSON.parse(r.stdout) as IpAddr[];
    const hostPrefix = (ip: string): number => (isIP(ip) === 4 ? 32 : 128);
    const have: Array<{ ifname: string; ip: string }> = [];
    for (const l of links) {
      for (const a of l.addr_info ?? []) if (a.prefixlen === hostPrefix(a.local) && inPools(pools, a.local) && a.local !== this.node.address) have.push({ ifname: l.ifname, ip: a.local });
    }
    const iface = want.length ? this.announceInterface(links) : '';
    for (const h of have) {
      if (want.includes(h.ip) && h.ifname === iface) continue;
      await run('ip', ['addr', 'del', `${h.ip}/${hostPrefix(h.ip)}`, 'dev', h.ifname]);
      this.log.info('load balancer address withdrawn', { ip: h.ip, interface: h.ifname });
    }
    for (const ip of want) {
      if (have.some((h) => h.ip === ip && h.ifname === iface)) continue;
      const add = await run('ip', ['addr', 'add', `${ip}/${hostPrefix(ip)}`, 'dev', iface]);
      if (!add.ok && !/exists/i.test(add.stderr)) throw new LoadBalancerError(`could not add ${ip} to ${iface}: ${add.stderr.trim()}`);
      this.log.info('load balancer address announced (L2)', { ip, interface: iface });
    }
  }

  /** Drops traffic to the announced addresses that kube-proxy did not DNAT to a Service backend. */
  private async syncGuard(ips: string[]): Promise<void> {
    const r = await run('iptables-restore', ['--noflush'], guardRules(ips));
    if (!r.ok) throw new LoadBalancerError(`iptables-restore refused the load balancer guard rules: ${r.stderr.trim()}`);
    if (!(await run('iptables', ['-C', 'INPUT', '-j', LB_INPUT_CHAIN])).ok) {
      const i = await run('iptables', ['-I', 'INPUT', '1', '-j', LB_INPUT_CHAIN]);
      if (!i.ok) throw new LoadBalancerError(`could not hook ${LB_INPUT_CHAIN} into INPUT: ${i.stderr.trim()}`);
    }
  }

  private gobgp(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
    return run(this.layout.componentBinary('gobgp', 'gobgp'), ['--target', `unix://${this.socket}`, ...args]);
  }

  /** gobgpd runs with this node's config; the RIB holds exactly the assigned addresses. Returns the session state. */
  private async syncBgp(s: LoadBalancerSettings, assigned: string[]): Promise<string> {
    const routerId = isIP(this.node.address) === 4 ? this.node.address : undefined;
    if (!routerId) throw new LoadBalancerError(`BGP mode needs an IPv4 router id and node ${this.node.name} has address ${this.node.address}`);
    const config = gobgpdConfig(s, routerId);
    if (this.speaker && (this.speaker.config !== config || this.speaker.proc.exitCode !== null)) await this.stopSpeaker();
    if (!this.speaker) await this.startSpeaker(config);
    const rib = await this.gobgp(['global', 'rib', '-a', 'ipv4', '-j']);
    if (!rib.ok) return `speaker starting (${rib.stderr.trim() || 'no answer'})`;
    const have = Object.keys(JSON.parse(rib.stdout || '{}') as Record<string, unknown>).map((p) => p.replace(/\/32$/, ''));
    const want = assigned.filter((ip) => isIP(ip) === 4);
    for (const ip of want.filter((x) => !have.includes(x))) {
      const r = await this.gobgp(['global', 'rib', 'add', '-a', 'ipv4', `${ip}/32`]);
      if (!r.ok) throw new LoadBalancerError(`gobgp could not announce ${ip}: ${r.stderr.trim()}`);
      this.log.info('load balancer address announced (BGP)', { ip });
    }
    for (const ip of have.filter((x) => !want.includes(x))) {
      await this.gobgp(['global', 'rib', 'del', '-a', 'ipv4', `${ip}/32`]);
      this.log.info('load balancer route withdrawn (BGP)', { ip });
    }
    const nb = await this.gobgp(['neighbor', '-j']);
    if (!nb.ok) return 'unknown';
    const peers = JSON.parse(nb.stdout || '[]') as Array<{ state?: { session_state?: number | string } }>;
    return sessionStateName(peers[0]?.state?.session_state);
  }

  private async startSpeaker(config: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, 'gobgpd.toml');
    writeFileAtomic(file, config, 0o600);
    this.killStaleSpeaker();
    rmSync(this.socket, { force: true });
    const proc = execa(this.layout.componentBinary('gobgp', 'gobgpd'), ['-f', file, '-t', 'toml', '--api-hosts', `unix://${this.socket}`, '-l', 'info', '--log-plain'], {
      reject: false,
      stdout: 'ignore',
      stderr: ['pipe'],
      env: { GODEBUG: this.layout.goDebug(process.env.GODEBUG ?? '') },
    });
    proc.stderr?.on('data', (b: Buffer) => this.log.debug('gobgpd', { line: b.toString().trim().slice(0, 500) }));
    if (proc.pid) writeFileAtomic(path.join(this.dir, 'gobgpd.pid'), String(proc.pid), 0o600);
    this.speaker = { proc, config };
    this.log.info('BGP speaker started', { peer: this.settings?.['bgp-peer-address'], pid: proc.pid });
  }

  /** A gobgpd left by a k8sd that was killed hard: stopped, so that only one speaker holds the session. */
  private killStaleSpeaker(): void {
    const pidFile = path.join(this.dir, 'gobgpd.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8'));
    try {
      if (pid > 1 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join(this.dir, 'gobgpd.toml'))) process.kill(pid, 'SIGTERM');
    } catch {
      // gone already
    }
    rmSync(pidFile, { force: true });
  }

  private async stopSpeaker(): Promise<void> {
    const sp = this.speaker;
    this.speaker = undefined;
    if (sp) {
      sp.proc.kill('SIGTERM');
      await sp.proc;
      this.log.info('BGP speaker stopped');
    }
    this.killStaleSpeaker();
  }
}

/** gobgp's JSON reports the FSM state as a number in some versions and a name in others. */
function sessionStateName(v: number | string | undefined): string {
  const names = ['unknown', 'idle', 'connect', 'active', 'opensent', 'openconfirm', 'established'];
  if (typeof v === 'number') return names[v] ?? String(v);
  return (v ?? 'unknown').toLowerCase().replace(/^session_state_/, '');
}

/** One load balancer per node root (several nodes share a process only in tests). */
const balancers = new Map<string, LoadBalancer>();

/** The feature is on: start or retune this node's loop; returns its status (not ready while its last pass failed). */
export function runLoadBalancer(node: { name: string; address: string }, layout: Layout, log: Logger, settings: LoadBalancerSettings): { ready: boolean; message: string } {
  let lb = balancers.get(layout.root);
  if (!lb) {
    lb = new LoadBalancer(node, layout, log);
    balancers.set(layout.root, lb);
  }
  lb.configure(settings);
  const modes = [settings['l2-mode'] ? 'L2 mode' : '', settings['bgp-mode'] ? `BGP mode (peer ${settings['bgp-peer-address']}${lb.summary.bgpSession ? `: ${lb.summary.bgpSession}` : ''})` : ''].filter(Boolean);
  const pending = lb.summary.pending.length ? `; no address for ${lb.summary.pending.join(', ')}` : '';
  if (lb.lastError) return { ready: false, message: `enabled, ${modes.join(' and ')}; failing on ${node.name}: ${lb.lastError}` };
  return { ready: true, message: `enabled, ${modes.join(' and ')}, pools ${settings.cidrs.join(',')}${pending}` };
}

/** The feature is off: withdraw what this node announced (also what a k8sd before a restart left). */
export async function removeLoadBalancer(layout: Layout, log: Logger, node: { name: string; address: string }, settings: LoadBalancerSettings): Promise<void> {
  const lb = balancers.get(layout.root);
  if (!lb && !existsSync(path.join(layout.k8sdStateDir, 'load-balancer'))) return;
  await (lb ?? new LoadBalancer(node, layout, log)).remove(settings, layout.kubeconfig('admin.conf'));
  balancers.delete(layout.root);
  log.info('load balancer removed from this node');
}

/** k8sd stops: the loop stops, addresses and rules stay. */
export function stopLoadBalancer(root: string): void {
  balancers.get(root)?.stop();
}
