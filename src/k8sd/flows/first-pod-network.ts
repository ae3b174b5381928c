// The first node's pod network config, written before its kubelet starts.
//
// The kubelet re-reads the runtime's network status every 5 s (updateRuntimeUp), and the node
// turns Ready only once containerd has a CNI config. Written when the node registered, its pod
// CIDR was known and flanneld had reported its MTU, the config arrived 1–3 s after the kubelet's
// first look, and the node (with every pod of the default features) waited for the next one. On a
// fresh cluster nothing is unknown in advance: the only node gets the first node-sized block of
// the cluster CIDR (k8sd claims it when the node registers, first-pod-cidr.ts), and flanneld's
// VXLAN MTU is the MTU of the interface it is told to use (--iface, the node address) minus
// VXLAN's 50 bytes (flannel v0.28 pkg/backend/vxlan). Membership rewrites the file as before if
// the node ends up with another CIDR or flanneld reports another MTU.
import { existsSync, rmSync } from 'node:fs';
import { execa } from 'execa';
import { missingDirs, removeEmptyDirs, writeFileAtomic } from '../../host/files.js';
import type { Layout } from '../../layout.js';
import { cniConflistPath, podNetworkConflist } from '../../services/worker-specs.js';
import { firstNodePodCidrs } from '../membership/first-pod-cidr.js';
import type { Step } from './flow.js';

/** flanneld's VXLAN overhead (outer IPv4 + UDP + VXLAN headers): its FLANNEL_MTU is the interface's MTU minus this. */
export const VXLAN_OVERHEAD = 50;

interface IpAddrEntry {
  ifname?: string;
  mtu?: number;
  addr_info?: Array<{ local?: string }>;
}

/** The MTU of the interface that holds `address`, from `ip -j addr show` output; undefined when none does. */
export function mtuOfAddress(ipJson: string, address: string): number | undefined {
  let entries: IpAddrEntry[];
  try {
    entries = JSON.parse(ipJson) as IpAddrEntry[];
  } catch {
    return undefined;
  }
  const found = entries.find((e) => e.addr_info?.some((a) => a.local === address));
  return typeof found?.mtu === 'number' ? found.mtu : undefined;
}

/** The MTU flanneld will report for a node whose VXLAN runs over `address` (in this network namespace). */
export async function expectedFlannelMtu(address: string): Promise<number | undefined> {
  const r = await execa('ip', ['-j', 'addr', 'show'], { reject: false });
  if (r.exitCode !== 0) return undefined;
  const mtu = mtuOfAddress(r.stdout, address);
  return mtu && mtu > VXLAN_OVERHEAD ? mtu - VXLAN_OVERHEAD : undefined;
}

/**
 * The CNI config a fresh cluster's first node will have, or undefined when it cannot be known
 * before the node registers (a cluster CIDR the range allocator would refuse, or no MTU found).
 */
export async function firstNodeConflist(l: Layout, clusterPodCidr: string, address: string): Promise<string | undefined> {
  const cidrs = firstNodePodCidrs(clusterPodCidr);
  if (!cidrs) return undefined;
  return podNetworkConflist(l, cidrs, () => expectedFlannelMtu(address));
}

interface FirstPodNetworkCtx {
  host: { layout: Layout };
  req: { address: string };
  cluster: { podCidr: string };
  /** The directories the step created for the file (removed on undo). */
  firstConflistDirs?: string[];
}

/** Bootstrap's step: the pod network config, before containerd and the kubelet look for one. */
export function firstPodNetworkStep<C extends FirstPodNetworkCtx>(): Step<C> {
  return {
    name: 'pod-network',
    title: 'Writing the pod network config',
    async run(ctx) {
      const l = ctx.host.layout;
      const file = cniConflistPath(l);
      if (existsSync(file)) return;
      const text = await firstNodeConflist(l, ctx.cluster.podCidr, ctx.req.address);
      if (!text) return;
      ctx.firstConflistDirs = missingDirs([file]);
      // CIS 1.1.9/1.1.10: CNI files 600, root:root.
      writeFileAtomic(file, text, 0o600);
    },
    async rollback(ctx) {
      if (!ctx.firstConflistDirs) return;
      rmSync(cniConflistPath(ctx.host.layout), { force: true });
      removeEmptyDirs(ctx.firstConflistDirs);
    },
  };
}
