// The first node of a fresh cluster gets its pod CIDR from k8sd, as soon as the kubelet registers it.
//
// The controller manager's range allocator gives it the same block, but only after the controller
// manager has won its lease, built every controller and synced its informers: 1–5 s after the
// node registers on a loaded 2-CPU machine, all of it on the path to a working node (flanneld and
// every pod wait for the pod CIDR; bootstrap writes the CNI config for this block beforehand,
// flows/first-pod-network.ts). Whichever of the two comes first sets it. The allocator takes a CIDR a
// node already has as occupied, whether it sees the node at start or later, and the API server
// lets a node's pod CIDRs be set only while they are empty, so the two can never hand out one
// block twice. Every node after the first is left to the controller manager.
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';
import { bigIntToIp, canonicalIp, parseCidrList } from '../../config/net.js';
import { apiStatus, mergePatchOptions } from './kube-clients.js';

/** The controller manager's node block sizes (its --node-cidr-mask-size-ipv4/-ipv6 defaults, which k8sd keeps). */
const NODE_PREFIX = { 4: 24, 6: 64 } as const;
/** The range allocator refuses a cluster CIDR more than this many bits wider than its node blocks. */
const MAX_PREFIX_DIFFERENCE = 16;

/**
 * The first node-sized block of each cluster pod CIDR, in the cluster CIDR's order: what the range
 * allocator gives the first node. Undefined when the allocator would not accept the cluster CIDR
 * as it is; then the controller manager is left to report it.
 */
export function firstNodePodCidrs(clusterPodCidr: string): string[] | undefined {
  const blocks: string[] = [];
  for (const cidr of parseCidrList(clusterPodCidr)) {
    const prefix = NODE_PREFIX[cidr.family];
    if (cidr.prefix > prefix || prefix - cidr.prefix > MAX_PREFIX_DIFFERENCE) return undefined;
    blocks.push(`${canonicalIp(bigIntToIp(cidr.base, cidr.family))}/${prefix}`);
  }
  return blocks;
}

/** A node's pod CIDRs (podCIDRs, or the older single podCIDR). */
export function podCidrsOf(node: V1Node): string[] {
  return node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
}

/**
 * - `assigned`: the node now has the first blocks.
 * - `pending`: the node has not registered yet; ask again.
 * - `not-needed`: the node has its CIDRs, another node has some (the controller manager is
 *   allocating), or the allocator would not accept the cluster CIDR.
 */
export type FirstPodCidrOutcome = { outcome: 'assigned'; podCidrs: string[] } | { outcome: 'pending' | 'not-needed' };

export async function claimFirstPodCidrs(api: CoreV1Api, nodeName: string, clusterPodCidr: string): Promise<FirstPodCidrOutcome> {
  const podCidrs = firstNodePodCidrs(clusterPodCidr);
  if (!podCidrs) return { outcome: 'not-needed' };
  const nodes = (await api.listNode()).items;
  if (nodes.some((n) => podCidrsOf(n).length > 0)) return { outcome: 'not-needed' };
  if (!nodes.some((n) => n.metadata?.name === nodeName)) return { outcome: 'pending' };
  try {
    await api.patchNode({ name: nodeName, body: { spec: { podCIDR: podCidrs[0], podCIDRs: podCidrs } } }, await mergePatchOptions());
  } catch (err) {
    // 422: the controller manager set them in the meantime (the API server allows it once).
    if (apiStatus(err) === 422) return { outcome: 'not-needed' };
    if (apiStatus(err) === 404) return { outcome: 'pending' };
    throw err;
  }
  return { outcome: 'assigned', podCidrs };
}
