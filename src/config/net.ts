// Address and CIDR helpers used by config validation and PKI SANs.
import { isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';

export interface Cidr {
  text: string;
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

function ipToBigInt(ip: string): bigint {
  if (isIPv4(ip)) return ip.split('.').reduce((acc, octet) => (acc << 8n) + BigInt(Number(octet)), 0n);
  // Expand IPv6 (with optional embedded IPv4 tail).
  let text = ip;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const v = ipToBigInt(v4tail[1]!);
    text = text.slice(0, -v4tail[1]!.length) + `${(v >> 16n).toString(16)}:${(v & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g || '0', 16)), 0n);
}

export function bigIntToIp(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

export class CidrError extends Error {}

export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) throw new CidrError(`"${text}" is not a CIDR (expected address/prefix, e.g. 10.1.0.0/16)`);
  const family = isIP(m[1]!);
  if (family !== 4 && family !== 6) throw new CidrError(`"${text}" does not start with a valid IP address`);
  const prefix = Number(m[2]);
  const bits = family === 4 ? 32 : 128;
  if (prefix > bits) throw new CidrError(`"${text}" has prefix /${prefix}, the maximum for IPv${family} is /${bits}`);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  const addr = ipToBigInt(m[1]!);
  if ((addr & mask) !== addr) {
    throw new CidrError(`"${text}" has host bits set; did you mean ${bigIntToIp(addr & mask, family)}/${prefix}?`);
  }
  return { text, family, base: addr, prefix };
}

/** Parses "v4" or "v4,v6" dual-stack CIDR lists. */
export function parseCidrList(text: string): Cidr[] {
  const parts = text.split(',').map((p) => p.trim());
  const cidrs = parts.map(parseCidr);
  if (cidrs.length > 2) throw new CidrError(`"${text}" lists ${cidrs.length} CIDRs; give one, or one IPv4 and one IPv6`);
  if (cidrs.length === 2 && cidrs[0]!.family === cidrs[1]!.family) {
    throw new CidrError(`"${text}" lists two IPv${cidrs[0]!.family} CIDRs; dual-stack needs one IPv4 and one IPv6`);
  }
  return cidrs;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const prefix = Math.min(a.prefix, b.prefix);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return (a.base & mask) === (b.base & mask);
}

/** The n-th address of a CIDR (1 = first usable: the kubernetes service IP). */
export function nthAddress(cidr: Cidr, n: number): string {
  return bigIntToIp(cidr.base + BigInt(n), cidr.family);
}

/** What kind of address an IP is, for deciding whether a node may be known by it. */
export type IpKind = 'unicast' | 'unspecified' | 'loopback' | 'ipv4-mapped' | 'ipv4-compatible' | 'link-local' | 'multicast' | 'broadcast';

/**
 * The one text form of an IP address: dotted decimal for IPv4, RFC 5952 for IPv6 (lower case,
 * no leading zeros, the longest run of two or more zero groups as "::", IPv4-mapped addresses as
 * ::ffff:a.b.c.d). Undefined when the text is not an IP address (zones such as %eth0 included).
 */
export function canonicalIp(ip: string): string | undefined {
  const family = isIP(ip);
  if (family === 0 || ip.includes('%')) return undefined;
  const value = ipToBigInt(ip);
  if (family === 4) return bigIntToIp(value, 4);
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  if (value >> 32n === 0xffffn) return `::ffff:${bigIntToIp(value & 0xffffffffn, 4)}`;
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (best.at < 0) return hex(groups);
  return `${hex(groups.slice(0, best.at))}::${hex(groups.slice(best.at + best.len))}`;
}

/** Classifies an IP address (which must be one: see canonicalIp). */
export function ipKind(ip: string): IpKind {
  const value = ipToBigInt(ip);
  if (isIPv4(ip)) {
    const first = Number(value >> 24n);
    if (first === 0) return 'unspecified'; // 0.0.0.0/8: "this network"
    if (first === 127) return 'loopback';
    if (value === 0xffffffffn) return 'broadcast';
    if (first >= 224) return first < 240 ? 'multicast' : 'broadcast';
    if (value >> 16n === 0xa9fen) return 'link-local'; // 169.254.0.0/16
    return 'unicast';
  }
  if (value === 0n) return 'unspecified';
  if (value === 1n) return 'loopback';
  if (value >> 32n === 0xffffn) return 'ipv4-mapped';
  if (value >> 32n === 0n) return 'ipv4-compatible'; // ::a.b.c.d, deprecated (RFC 4291)
  if (value >> 120n === 0xffn) return 'multicast';
  if (value >> 118n === 0x3fan) return 'link-local'; // fe80::/10
  return 'unicast';
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (as a dual-stack socket reports IPv4 peers); other addresses unchanged. */
export function unmapIpv4(ip: string): string {
  return isIP(ip) === 6 && ipKind(ip) === 'ipv4-mapped' ? bigIntToIp(ipToBigInt(ip) & 0xffffffffn, 4) : ip;
}

export function isLoopback(ip: string): boolean {
  if (isIP(ip) === 0) return false;
  return ipKind(unmapIpv4(ip)) === 'loopback';
}

/** The host's IPv4 address on the interface of the default route, else the first non-loopback, else 127.0.0.1. */
export function defaultNodeAddress(): string {
  const candidates: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal) candidates.push(name === 'eth0' ? a.address : a.address);
    }
  }
  return candidates[0] ?? '127.0.0.1';
}

export function localAddresses(): string[] {
  const out: string[] = [];
  for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) out.push(a.address);
  return out;
}

const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
export function isDnsName(name: string): boolean {
  const trimmed = name.startsWith('*.') ? name.slice(2) : name;
  return trimmed.length <= 253 && trimmed.split('.').every((l) => DNS_LABEL.test(l));
}

export class ServerUrlError extends Error {
  constructor(readonly input: string, readonly reason: string) {
    super(`invalid server ${JSON.stringify(input)}: ${reason}`);
    this.name = 'ServerUrlError';
  }
}

/**
 * An apiserver URL as a user gives it to `k8s config --server`: https://host[:port][/path], or a
 * bare host[:port] (https is assumed). Anything else (another scheme, credentials, a query, spaces
 * or control characters) is refused, so the value cannot reshape the kubeconfig it is put into.
 */
export function parseServerUrl(input: string): string {
  const text = input.trim();
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f]/.test(text) || text === '') throw new ServerUrlError(input, 'must be a URL without spaces or control characters, such as https://10.0.0.5:6443');
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `https://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ServerUrlError(input, 'is not a URL; give https://<host>[:<port>], e.g. https://10.0.0.5:6443');
  }
  if (url.protocol !== 'https:') throw new ServerUrlError(input, `scheme ${url.protocol.replace(/:$/, '')} is not allowed; the apiserver is served over https://`);
  if (url.username || url.password) throw new ServerUrlError(input, 'must not carry credentials (user:password@)');
  if (url.search || url.hash) throw new ServerUrlError(input, 'must not have a query or fragment');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host) === 0 && !isDnsName(host)) throw new ServerUrlError(input, `"${url.hostname}" is neither an IP address nor a DNS name`);
  return url.pathname === '/' ? `${url.protocol}//${url.host}` : url.href;
}
