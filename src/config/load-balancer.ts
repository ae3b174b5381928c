// The load-balancer feature's settings (Canonical Kubernetes' `load-balancer.*` keys): defaults,
// per-key validation, the whole-feature check on enable, address pools and their allocation, the
// L2 announcer election and the BGP speaker's config. Pure: k8sd's load-balancer loop acts on it.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { bigIntToIp, CidrError, parseCidr } from './net.js';

export interface LoadBalancerSettings {
  enabled: boolean;
  /** Address pools: CIDRs (10.0.0.0/28) or ranges (10.0.0.10-10.0.0.20). */
  cidrs: string[];
  'l2-mode': boolean;
  /** Interfaces L2 announcements may use; empty: the interface that holds the node's address. */
  'l2-interfaces': string[];
  'bgp-mode': boolean;
  /** 0 while unset. */
  'bgp-local-asn': number;
  'bgp-peer-address': string;
  'bgp-peer-asn': number;
  'bgp-peer-port': number;
}

export const LOAD_BALANCER_KEYS = ['enabled', 'cidrs', 'l2-mode', 'l2-interfaces', 'bgp-mode', 'bgp-local-asn', 'bgp-peer-address', 'bgp-peer-asn', 'bgp-peer-port'] as const;
export type LoadBalancerKey = (typeof LOAD_BALANCER_KEYS)[number];

export function defaultLoadBalancerSettings(): LoadBalancerSettings {
  return { enabled: false, cidrs: [], 'l2-mode': true, 'l2-interfaces': [], 'bgp-mode': false, 'bgp-local-asn': 0, 'bgp-peer-address': '', 'bgp-peer-asn': 0, 'bgp-peer-port': 179 };
}

/** A key's value is refused; `key` is the full key (load-balancer.cidrs). */
export class LoadBalancerConfigError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'LoadBalancerConfigError';
  }
}

/** One pool entry as a closed range of addresses of one family. */
export interface AddressRange {
  text: string;
  family: 4 | 6;
  first: bigint;
  last: bigint;
}

const ipValue = (ip: string): bigint => parseCidr(`${ip}/${isIP(ip) === 4 ? 32 : 128}`).base;

/** Parses a pool entry: a CIDR or `first-last` (same family, first ≤ last). Throws CidrError. */
export function parseAddressRange(text: string): AddressRange {
  const t = text.trim();
  const dash = t.indexOf('-');
  if (dash < 0) {
    const c = parseCidr(t);
    const bits = c.family === 4 ? 32 : 128;
    return { text: t, family: c.family, first: c.base, last: c.base + (1n << BigInt(bits - c.prefix)) - 1n };
  }
  const a = t.slice(0, dash).trim();
  const b = t.slice(dash + 1).trim();
  const fa = isIP(a);
  const fb = isIP(b);
  if (fa === 0 || fb === 0) throw new CidrError(`"${t}" is neither a CIDR (10.0.0.0/28) nor a range of two addresses (10.0.0.10-10.0.0.20)`);
  if (fa !== fb) throw new CidrError(`"${t}" mixes an IPv4 and an IPv6 address`);
  const first = ipValue(a);
  const last = ipValue(b);
  if (first > last) throw new CidrError(`"${t}" starts after it ends; give the lower address first`);
  return { text: t, family: fa as 4 | 6, first, last };
}

function parseAsn(key: string, value: unknown): number {
  const v = String(value).trim();
  if (!/^\d{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 4294967295) {
    throw new LoadBalancerConfigError(key, `"${String(value)}" is not an AS number; give an integer from 1 to 4294967295 (private: 64512-65534 or 4200000000-4294967294)`);
  }
  return Number(v);
}

function parseBoolValue(key: string, value: unknown): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new LoadBalancerConfigError(key, `"${String(value)}" is not a boolean; use true or false`);
}

function listOf(value: unknown): string[] {
  const items = Array.isArray(value) ? value.map(String) : String(value).split(/[,\s]+/);
  return items.map((s) => s.trim()).filter(Boolean);
}

/** Linux interface names: 1-15 characters, none of '/', ':', whitespace (ip-link's rules). */
const IFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Sets one `load-balancer.<field>` on `s` after validating it. Throws LoadBalancerConfigError naming the key. */
export function applyLoadBalancerKey(s: LoadBalancerSettings, field: LoadBalancerKey, value: unknown): void {
  const key = `load-balancer.${field}`;
  switch (field) {
    case 'enabled':
    case 'l2-mode':
    case 'bgp-mode':
      s[field] = parseBoolValue(key, value);
      return;
    case 'cidrs': {
      const list = listOf(value);
      const ranges: AddressRange[] = [];
      for (const item of list) {
        try {
          ranges.push(parseAddressRange(item));
        } catch (err) {
          if (err instanceof CidrError) throw new LoadBalancerConfigError(key, `${err.message}; give CIDRs or ranges separated by commas, such as 192.0.2.0/28,192.0.2.100-192.0.2.110`);
          throw err;
        }
      }
      const v6 = ranges.find((r) => r.family === 6);
      // The guard chain that keeps host services off the announced addresses is IPv4 (iptables) only.
      if (v6) throw new LoadBalancerConfigError(key, `"${v6.text}" is an IPv6 pool; this release announces IPv4 addresses only, give IPv4 CIDRs or ranges`);
      for (let i = 0; i < ranges.length; i++) {
        for (let j = i + 1; j < ranges.length; j++) {
          const a = ranges[i]!;
          const b = ranges[j]!;
          if (a.family === b.family && a.first <= b.last && b.first <= a.last) throw new LoadBalancerConfigError(key, `"${a.text}" and "${b.text}" overlap; give each address once`);
        }
      }
      s.cidrs = list;
      return;
    }
    case 'l2-interfaces': {
      const list = listOf(value);
      for (const name of list) {
        if (!IFACE_NAME.test(name)) throw new LoadBalancerConfigError(key, `"${name}" is not a network interface name (1-15 letters, digits, '.', '_' or '-'), such as eth0`);
      }
      s['l2-interfaces'] = list;
      return;
    }
    case 'bgp-local-asn':
    case 'bgp-peer-asn':
      s[field] = parseAsn(key, value);
      return;
    case 'bgp-peer-address': {
      const v = String(value).trim();
      if (isIP(v) === 0) throw new LoadBalancerConfigError(key, `"${String(value)}" is not an IP address; give the BGP router's address, such as 192.0.2.1`);
      s['bgp-peer-address'] = v;
      return;
    }
    case 'bgp-peer-port': {
      const v = String(value).trim();
      if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new LoadBalancerConfigError(key, `"${String(value)}" is not a TCP port; give an integer from 1 to 65535 (BGP's is 179)`);
      s['bgp-peer-port'] = Number(v);
      return;
    }
  }
}

/**
 * What an enabled load balancer needs as a whole (checked after every change of a set, so that
 * `k8s set load-balancer.cidrs=… load-balancer.enabled=true` works in one command).
 */
export function checkLoadBalancer(s: LoadBalancerSettings): void {
  if (!s.enabled) return;
  if (!s.cidrs.length) throw new LoadBalancerConfigError('load-balancer.cidrs', 'no address pool; set load-balancer.cidrs (such as 192.0.2.0/28) before enabling the load balancer');
  if (!s['l2-mode'] && !s['bgp-mode']) throw new LoadBalancerConfigError('load-balancer.l2-mode', 'both l2-mode and bgp-mode are false, so no address would be announced; set one of them to true');
  if (s['bgp-mode']) {
    for (const k of ['bgp-local-asn', 'bgp-peer-asn'] as const) {
      if (!s[k]) throw new LoadBalancerConfigError(`load-balancer.${k}`, 'is required in BGP mode; give an AS number from 1 to 4294967295');
    }
    if (!s['bgp-peer-address']) throw new LoadBalancerConfigError('load-balancer.bgp-peer-address', 'is required in BGP mode; give the BGP router\'s address');
  }
}

/** The pools as ranges (settings already validated). */
export function addressRanges(s: Pick<LoadBalancerSettings, 'cidrs'>): AddressRange[] {
  return s.cidrs.map(parseAddressRange);
}

export function inPools(ranges: AddressRange[], ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  const v = ipValue(ip);
  return ranges.some((r) => r.family === family && r.first <= v && v <= r.last);
}

/**
 * The first free address of the pools, skipping a CIDR's network and broadcast addresses (IPv4,
 * prefixes shorter than /31) so that a pool may be a real subnet. Undefined when all are taken.
 */
export function nextFreeAddress(ranges: AddressRange[], taken: ReadonlySet<string>, family?: 4 | 6): string | undefined {
  for (const r of ranges) {
    if (family && r.family !== family) continue;
    let first = r.first;
    let last = r.last;
    const subnet = r.text.includes('/') && r.family === 4 && last - first >= 3n;
    if (subnet) {
      first += 1n;
      last -= 1n;
    }
    for (let v = first; v <= last; v++) {
      const ip = bigIntToIp(v, r.family);
      if (!taken.has(ip)) return ip;
    }
  }
  return undefined;
}

/**
 * The node that announces `ip` in L2 mode: every node computes the same answer from the same list
 * of eligible nodes (highest hash of node and address wins), so addresses spread over the nodes
 * and move only when their node goes away.
 */
export function electAnnouncer(ip: string, nodes: readonly string[]): string | undefined {
  let best: { node: string; score: string } | undefined;
  for (const node of nodes) {
    const score = createHash('sha256').update(`${node}\0${ip}`).digest('hex');
    if (!best || score > best.score) best = { node, score };
  }
  return best?.node;
}

/** Values a TOML basic string may hold here (addresses and numbers only; validated before). */
const tomlString = (v: string): string => JSON.stringify(v);

/**
 * gobgpd's configuration for BGP mode: the node's router id and ASN, one peer, no listening port
 * (the speaker only connects out), the unicast family of the peer's address. The announced routes are not in the
 * file: k8sd adds and withdraws them through gobgpd's API on a unix socket.
 */
export function gobgpdConfig(s: LoadBalancerSettings, routerId: string): string {
  const v6Peer = isIP(s['bgp-peer-address']) === 6;
  return [
    '# Written by k8sd (load-balancer feature, BGP mode); changes are overwritten.',
    '[global.config]',
    `  as = ${s['bgp-local-asn']}`,
    `  router-id = ${tomlString(routerId)}`,
    '  port = -1',
    '',
    '[[neighbors]]',
    '  [neighbors.config]',
    `    neighbor-address = ${tomlString(s['bgp-peer-address'])}`,
    `    peer-as = ${s['bgp-peer-asn']}`,
    '  [neighbors.transport.config]',
    `    remote-port = ${s['bgp-peer-port']}`,
    '    passive-mode = false',
    '  [[neighbors.afi-safis]]',
    '    [neighbors.afi-safis.config]',
    `      afi-safi-name = ${tomlString(v6Peer ? 'ipv6-unicast' : 'ipv4-unicast')}`,
    '',
  ].join('\n');
}
