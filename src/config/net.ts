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

export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.');
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
