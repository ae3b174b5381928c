// NetworkPolicy → iptables rules for the pods of one node. Pure: the enforcer (enforcer.ts) feeds
// it the cluster's pods, namespaces and policies and applies what it returns with iptables-restore.
//
// The model: every packet a node forwards passes K8SD-NP-FORWARD, jumped to first from FORWARD.
// Replies of allowed connections pass (conntrack). A packet to a local pod that an ingress policy
// selects goes through that pod's ingress chain, which RETURNs when some rule allows it and DROPs
// otherwise; likewise a packet from a local pod that an egress policy selects. Cross-node traffic
// is checked twice, egress on the sender's node and ingress on the receiver's. Traffic the node
// itself originates (kubelet probes) does not pass FORWARD: as Kubernetes requires, it is allowed.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | string;
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}
export interface PolicyPort {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
export interface PolicyRule {
  ports?: PolicyPort[];
  from?: PolicyPeer[];
  to?: PolicyPeer[];
}
export interface NetworkPolicyView {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  policyTypes?: string[];
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}
export interface PodView {
  uid: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  ips: string[];
  nodeName?: string;
  hostNetwork: boolean;
  /** Named container ports: name → [protocol, port]. */
  namedPorts: Record<string, Array<[string, number]>>;
}
export interface NamespaceView {
  name: string;
  labels: Record<string, string>;
}

export const FORWARD_CHAIN = 'K8SD-NP-FORWARD';
export const CHAIN_PREFIX = 'K8SD-NP';

export function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false; // an operator we do not know selects nothing
    }
  }
  return true;
}

/** The policy types a policy has: as given, else Ingress, plus Egress when it has egress rules. */
export function policyTypes(p: NetworkPolicyView): Set<'Ingress' | 'Egress'> {
  if (p.policyTypes?.length) return new Set(p.policyTypes.filter((t): t is 'Ingress' | 'Egress' => t === 'Ingress' || t === 'Egress'));
  return new Set(p.egress?.length ? ['Ingress', 'Egress'] : ['Ingress']);
}

/** Source (or destination) matches of one peer: IP addresses/CIDRs, each with exceptions. */
interface AddressMatch {
  cidr: string;
  except: string[];
}

/** The (non-host-network) pods a pod/namespace peer selects. */
function peerPods(peer: PolicyPeer, policyNs: string, pods: PodView[], namespaces: Map<string, NamespaceView>): PodView[] {
  const inNamespace = (ns: string): boolean =>
    peer.namespaceSelector ? selectorMatches(peer.namespaceSelector, namespaces.get(ns)?.labels ?? {}) : ns === policyNs;
  return pods.filter((p) => !p.hostNetwork && inNamespace(p.namespace) && selectorMatches(peer.podSelector, p.labels));
}

function podAddresses(p: PodView): AddressMatch[] {
  return p.ips.filter((ip) => isIP(ip) === 4).map((ip) => ({ cidr: `${ip}/32`, except: [] }));
}

function peerAddresses(peer: PolicyPeer, policyNs: string, pods: PodView[], namespaces: Map<string, NamespaceView>): AddressMatch[] {
  if (peer.ipBlock) {
    return isIP(peer.ipBlock.cidr.split('/')[0]!) === 4 ? [{ cidr: peer.ipBlock.cidr, except: (peer.ipBlock.except ?? []).filter((c) => isIP(c.split('/')[0]!) === 4) }] : [];
  }
  return peerPods(peer, policyNs, pods, namespaces).flatMap(podAddresses);
}

/** Port matches of a rule for one target pod (named ports resolve against that pod). */
function portMatches(ports: PolicyPort[] | undefined, namedIn: PodView | undefined): string[] | undefined {
  if (!ports?.length) return undefined; // every port
  const out: string[] = [];
  for (const p of ports) {
    const proto = (p.protocol ?? 'TCP').toLowerCase();
    if (p.port === undefined) {
      out.push(`-p ${proto}`);
    } else if (typeof p.port === 'number' || /^\d+$/.test(p.port)) {
      const port = Number(p.port);
      out.push(p.endPort && p.endPort > port ? `-p ${proto} -m ${proto} --dport ${port}:${p.endPort}` : `-p ${proto} -m ${proto} --dport ${port}`);
    } else {
      for (const [nproto, nport] of namedIn?.namedPorts[p.port] ?? []) {
        if (nproto.toLowerCase() === proto) out.push(`-p ${proto} -m ${proto} --dport ${nport}`);
      }
    }
  }
  return out;
}

export function chainName(kind: 'IN' | 'OUT', podUid: string): string {
  return `${CHAIN_PREFIX}-${kind}-${createHash('sha256').update(podUid).digest('hex').slice(0, 12).toUpperCase()}`;
}

export interface CompiledRules {
  /** iptables-restore input for the filter table (our chains only; --noflush keeps the rest). */
  restore: string;
  /** Every chain of ours the input defines (others of ours are stale). */
  chains: string[];
  /** Local pods with an ingress or egress chain, for logs and tests. */
  isolated: Array<{ pod: string; ingress: boolean; egress: boolean }>;
}

/**
 * Compiles the policies that select this node's pods. For ingress, a rule's peers are sources and its ports are ports of the selected pod; for egress, peers are
 * destinations and named ports resolve against each destination pod.
 */
export function compileNetworkPolicies(node: string, pods: PodView[], namespaces: NamespaceView[], policies: NetworkPolicyView[]): CompiledRules {
  const nsMap = new Map(namespaces.map((n) => [n.name, n]));
  const local = pods.filter((p) => p.nodeName === node && !p.hostNetwork && p.ips.some((ip) => isIP(ip) === 4)).sort((a, b) => a.uid.localeCompare(b.uid));
  const lines: string[] = ['*filter', `:${FORWARD_CHAIN} - [0:0]`];
  const body: string[] = [`-A ${FORWARD_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  const chains = [FORWARD_CHAIN];
  const isolated: CompiledRules['isolated'] = [];

  for (const pod of local) {
    const selecting = policies.filter((p) => p.namespace === pod.namespace && selectorMatches(p.podSelector, pod.labels));
    const ingress = selecting.filter((p) => policyTypes(p).has('Ingress'));
    const egress = selecting.filter((p) => policyTypes(p).has('Egress'));
    if (!ingress.length && !egress.length) continue;
    isolated.push({ pod: `${pod.namespace}/${pod.name}`, ingress: ingress.length > 0, egress: egress.length > 0 });
    const ips = pod.ips.filter((ip) => isIP(ip) === 4);
    const comment = `-m comment --comment "${pod.namespace}/${pod.name}"`;

    if (ingress.length) {
      const chain = chainName('IN', pod.uid);
      chains.push(chain);
      lines.push(`:${chain} - [0:0]`);
      for (const ip of ips) body.push(`-A ${FORWARD_CHAIN} -d ${ip}/32 ${comment} -j ${chain}`);
      for (const rule of ingress.flatMap((p) => (p.ingress ?? []).map((r) => ({ r, ns: p.namespace })))) {
        const ports = portMatches(rule.r.ports, pod);
        if (ports && !ports.length) continue; // named ports this pod does not have: the rule allows nothing
        const sources = rule.r.from?.length ? rule.r.from.flatMap((peer) => peerAddresses(peer, rule.ns, pods, nsMap)) : [{ cidr: '0.0.0.0/0', except: [] }];
        body.push(...allowRules(chain, '-s', sources, ports ?? ['']));
      }
      body.push(`-A ${chain} -j DROP`);
    }
    if (egress.length) {
      const chain = chainName('OUT', pod.uid);
      chains.push(chain);
      lines.push(`:${chain} - [0:0]`);
      for (const ip of ips) body.push(`-A ${FORWARD_CHAIN} -s ${ip}/32 ${comment} -j ${chain}`);
      for (const rule of egress.flatMap((p) => (p.egress ?? []).map((r) => ({ r, ns: p.namespace })))) {
        if (!rule.r.to?.length) {
          const ports = portMatches(rule.r.ports, undefined);
          body.push(...allowRules(chain, '-d', [{ cidr: '0.0.0.0/0', except: [] }], ports ?? ['']));
          continue;
        }
        for (const peer of rule.r.to) {
          if (peer.ipBlock) {
            const ports = portMatches(rule.r.ports, undefined);
            body.push(...allowRules(chain, '-d', peerAddresses(peer, rule.ns, pods, nsMap), ports ?? ['']));
            continue;
          }
          // Named ports resolve per destination pod.
          for (const dest of peerPods(peer, rule.ns, pods, nsMap)) {
            const ports = portMatches(rule.r.ports, dest);
            if (ports && !ports.length) continue;
            body.push(...allowRules(chain, '-d', podAddresses(dest), ports ?? ['']));
          }
        }
      }
      body.push(`-A ${chain} -j DROP`);
    }
  }
  return { restore: [...lines, ...body, 'COMMIT', ''].join('\n'), chains, isolated };
}

/** Marks a packet as allowed by an ipBlock with exceptions (within one pod chain). */
const EXCEPT_MARK = '0x40000/0x40000';

/**
 * RETURN (allowed) for each address and port match. An ipBlock with `except` ranges takes a mark:
 * cleared, set when the packet is in the CIDR, cleared again for each excepted range, RETURN when
 * still set. Each group clears the mark first, so no mark leaks between groups or chains.
 */
function allowRules(chain: string, flag: '-s' | '-d', addrs: AddressMatch[], ports: string[]): string[] {
  const out: string[] = [];
  const rule = (...parts: string[]): string => ['-A', chain, ...parts].filter(Boolean).join(' ');
  for (const a of addrs) {
    for (const port of ports) {
      if (!a.except.length) {
        out.push(rule(flag, a.cidr, port, '-j RETURN'));
        continue;
      }
      out.push(rule('-j MARK --set-xmark', `0x0/${EXCEPT_MARK.split('/')[1]}`));
      out.push(rule(flag, a.cidr, port, '-j MARK --set-xmark', EXCEPT_MARK));
      for (const e of a.except) out.push(rule(flag, e, '-j MARK --set-xmark', `0x0/${EXCEPT_MARK.split('/')[1]}`));
      out.push(rule('-m mark --mark', EXCEPT_MARK, '-j RETURN'));
    }
  }
  return out;
}
