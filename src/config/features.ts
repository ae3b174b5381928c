// Feature settings under Canonical Kubernetes' key names (`dns.service-ip`, `network.enabled`, …):
// defaults, validation, and the flat key=value view `k8s set` and `k8s get` use. Pure: the daemon
// stores the result in the cluster config, the feature controller acts on it.
import { isIP } from 'node:net';
import path from 'node:path';
import { isDnsName, nthAddress, parseCidrList } from './net.js';
import { controlCharacterProblem } from './overrides.js';
import { applyLoadBalancerKey, checkLoadBalancer, defaultLoadBalancerSettings, LOAD_BALANCER_KEYS, LoadBalancerConfigError, LoadBalancerKey, LoadBalancerSettings } from './load-balancer.js';
import { checkNeedsNetwork, checkSecretName, defaultGatewaySettings, defaultIngressSettings, GATEWAY_KEYS, GatewaySettings, INGRESS_KEYS, IngressSettings } from './ingress-gateway.js';

/** Features this release deploys. */
export const IMPLEMENTED_FEATURES = ['network', 'dns', 'local-storage', 'metrics-server', 'load-balancer', 'ingress', 'gateway'] as const;
/** Every feature name Canonical Kubernetes knows. */
export const FEATURE_NAMES = ['network', 'dns', 'gateway', 'ingress', 'load-balancer', 'local-storage', 'metrics-server'] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];
export type ImplementedFeature = (typeof IMPLEMENTED_FEATURES)[number];

export interface FeatureSettings {
  network: { enabled: boolean };
  dns: { enabled: boolean; 'cluster-domain': string; 'service-ip': string; 'upstream-nameservers': string[] };
  'local-storage': { enabled: boolean; 'local-path': string; 'reclaim-policy': ReclaimPolicy; default: boolean };
  'metrics-server': { enabled: boolean };
  'load-balancer': LoadBalancerSettings;
  ingress: IngressSettings;
  gateway: GatewaySettings;
}

/** The reclaim policies a dynamically provisioned volume can have (Recycle is deprecated and not offered). */
export const RECLAIM_POLICIES = ['Delete', 'Retain'] as const;
export type ReclaimPolicy = (typeof RECLAIM_POLICIES)[number];
/** Canonical Kubernetes' default for local-storage.local-path (a host path; a test node re-roots it under K8S_ROOT). */
export const DEFAULT_LOCAL_PATH = '/var/snap/k8s/common/rawfile-storage';

export class FeatureConfigError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'FeatureConfigError';
  }
}

export function isFeatureName(name: string): name is FeatureName {
  return (FEATURE_NAMES as readonly string[]).includes(name);
}

export function isImplemented(name: string): name is ImplementedFeature {
  return (IMPLEMENTED_FEATURES as readonly string[]).includes(name);
}

/** The DNS Service address when none is given: the 10th address of the first service CIDR. */
export function defaultDnsServiceIp(serviceCidr: string): string {
  return nthAddress(parseCidrList(serviceCidr)[0]!, 10);
}

/**
 * The features a new cluster starts with, as Canonical Kubernetes: a plain bootstrap (no file)
 * enables network, dns, gateway, local-storage and metrics-server; with a bootstrap file every
 * feature the file leaves out is off except metrics-server. Ingress and load-balancer are always
 * off until enabled.
 */
export function defaultFeatureSettings(serviceCidr: string, plain: boolean): FeatureSettings {
  return {
    network: { enabled: plain },
    dns: { enabled: plain, 'cluster-domain': 'cluster.local', 'service-ip': defaultDnsServiceIp(serviceCidr), 'upstream-nameservers': ['/etc/resolv.conf'] },
    'local-storage': { enabled: plain, 'local-path': DEFAULT_LOCAL_PATH, 'reclaim-policy': 'Delete', default: true },
    'metrics-server': { enabled: true },
    'load-balancer': defaultLoadBalancerSettings(),
    ingress: defaultIngressSettings(),
    gateway: defaultGatewaySettings(plain),
  };
}

/** Every feature off, with its default settings: what a cluster stored before a feature existed has. */
export function legacyFeatureSettings(serviceCidr: string): FeatureSettings {
  const d = defaultFeatureSettings(serviceCidr, false);
  d['metrics-server'].enabled = false;
  return d;
}

/** Settings of a cluster stored before a feature existed: that feature's defaults, off. */
export function withFeatureDefaults(s: Partial<FeatureSettings> & Pick<FeatureSettings, 'network' | 'dns'>): FeatureSettings {
  const d = legacyFeatureSettings('10.152.183.0/24');
  return {
    ...s,
    'local-storage': s['local-storage'] ?? d['local-storage'],
    'metrics-server': s['metrics-server'] ?? d['metrics-server'],
    'load-balancer': { ...d['load-balancer'], ...s['load-balancer'] },
    ingress: s.ingress ?? d.ingress,
    gateway: s.gateway ?? d.gateway,
  };
}

/** Keys `k8s set` and `k8s get` understand for each implemented feature. */
export const FEATURE_KEYS: Record<ImplementedFeature, readonly string[]> = {
  network: ['enabled', 'kube-proxy-enabled'],
  dns: ['enabled', 'cluster-domain', 'service-ip', 'upstream-nameservers'],
  'local-storage': ['enabled', 'local-path', 'reclaim-policy', 'default'],
  'metrics-server': ['enabled'],
  'load-balancer': LOAD_BALANCER_KEYS,
  ingress: INGRESS_KEYS,
  gateway: GATEWAY_KEYS,
};

/** An absolute, normalized directory for local volumes (not / and not a system directory's root). */
function checkLocalPath(key: string, value: unknown): string {
  const v = String(value);
  if (!path.isAbsolute(v)) throw new FeatureConfigError(key, `"${v}" is not an absolute path; give a directory such as ${DEFAULT_LOCAL_PATH}`);
  const clean = v.replace(/(.)\/+$/, '$1');
  if (/[\s\0]/.test(v) || path.normalize(clean) !== clean || v.split('/').includes('..')) {
    throw new FeatureConfigError(key, `"${v}" is not a plain absolute path (no whitespace, "..", "." or doubled slashes); give a directory such as ${DEFAULT_LOCAL_PATH}`);
  }
  if (['/', '/etc', '/proc', '/sys', '/dev', '/run', '/boot', '/usr', '/bin', '/sbin', '/lib', '/var', '/root'].includes(clean)) {
    throw new FeatureConfigError(key, `"${v}" is a system directory; give a directory of its own such as ${DEFAULT_LOCAL_PATH}`);
  }
  return clean;
}

const notYet = (feature: string): string =>
  `the ${feature} feature is not available in this release yet (available: ${IMPLEMENTED_FEATURES.join(', ')}); leave it out or set it to false`;

function parseBool(key: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new FeatureConfigError(key, `"${String(value)}" is not a boolean; use true or false`);
}

function parseList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String);
  return String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** An upstream for CoreDNS's forward plugin: an IP (optionally :port) or a resolv.conf path. */
function checkUpstream(key: string, u: string): void {
  // The value lands in a Corefile line: a newline or a space would add directives of its own.
  const problem = controlCharacterProblem(u);
  if (problem) throw new FeatureConfigError(key, problem);
  if (u.startsWith('/')) {
    if (/\s/.test(u)) throw new FeatureConfigError(key, `"${u}" contains a space; a resolv.conf path is one word`);
    return;
  }
  const host = u.replace(/^(dns|tls):\/\//, '').replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([^:]+):\d+$/, '$1');
  if (isIP(host) === 0) throw new FeatureConfigError(key, `"${u}" is neither an IP address (optionally with :port) nor a resolv.conf path such as /etc/resolv.conf`);
}

export interface ClusterFacts {
  serviceCidr: string;
}

/**
 * Applies `key=value` changes to a copy of the settings, validating every key and value first.
 * Throws FeatureConfigError naming the key; the input is never modified.
 */
export function applyFeatureChanges(current: FeatureSettings, changes: Record<string, unknown>, facts: ClusterFacts, opts: { bootstrap?: boolean } = {}): FeatureSettings {
  const next: FeatureSettings = structuredClone(current);
  for (const [key, value] of Object.entries(changes)) {
    const dot = key.indexOf('.');
    const feature = dot < 0 ? key : key.slice(0, dot);
    const field = dot < 0 ? '' : key.slice(dot + 1);
    if (!isFeatureName(feature)) {
      throw new FeatureConfigError(key, `unknown feature "${feature}"; known features: ${FEATURE_NAMES.join(', ')} (other keys: etcd-snapshot.schedule, etcd-snapshot.retention)`);
    }
    if (!field) throw new FeatureConfigError(key, `name a key of the feature, such as ${feature}.enabled`);
    if (!isImplemented(feature)) {
      if (field === 'enabled' && parseBool(key, value) === false) continue;
      throw new FeatureConfigError(key, notYet(feature));
    }
    if (!FEATURE_KEYS[feature].includes(field)) throw new FeatureConfigError(key, `unknown key; ${feature} has ${FEATURE_KEYS[feature].map((k) => `${feature}.${k}`).join(', ')}`);
    if (feature === 'local-storage') {
      const ls = next['local-storage'];
      if (field === 'enabled') ls.enabled = parseBool(key, value);
      else if (field === 'default') ls.default = parseBool(key, value);
      else if (field === 'local-path') ls['local-path'] = checkLocalPath(key, value);
      else {
        const v = String(value);
        if (!(RECLAIM_POLICIES as readonly string[]).includes(v)) throw new FeatureConfigError(key, `"${v}" is not a reclaim policy; use ${RECLAIM_POLICIES.join(' or ')}`);
        ls['reclaim-policy'] = v as ReclaimPolicy;
      }
      continue;
    }
    if (feature === 'metrics-server') {
      next['metrics-server'].enabled = parseBool(key, value);
      continue;
    }
    if (feature === 'load-balancer') {
      try {
        applyLoadBalancerKey(next['load-balancer'], field as LoadBalancerKey, value);
      } catch (err) {
        if (err instanceof LoadBalancerConfigError) throw new FeatureConfigError(err.key, err.reason);
        throw err;
      }
      continue;
    }
    if (feature === 'ingress') {
      if (field === 'default-tls-secret') next.ingress['default-tls-secret'] = checkSecretName(key, value);
      else next.ingress[field === 'enabled' ? 'enabled' : 'enable-proxy-protocol'] = parseBool(key, value);
      continue;
    }
    if (feature === 'gateway') {
      next.gateway.enabled = parseBool(key, value);
      continue;
    }
    if (feature === 'network') {
      if (field === 'enabled') next.network.enabled = parseBool(key, value);
      else if (parseBool(key, value) === false) {
        throw new FeatureConfigError(key, 'kube-proxy is required: the cluster network (flannel) does not replace it; leave kube-proxy-enabled true');
      }
      continue;
    }
    switch (field) {
      case 'enabled':
        next.dns.enabled = parseBool(key, value);
        break;
      case 'cluster-domain': {
        const v = String(value);
        if (!isDnsName(v)) throw new FeatureConfigError(key, `"${v}" is not a DNS domain; use a name such as cluster.local`);
        if (!opts.bootstrap && v !== current.dns['cluster-domain']) {
          throw new FeatureConfigError(key, 'the cluster domain is fixed at bootstrap (it is in the API server certificate and in every pod); it cannot change afterwards');
        }
        next.dns['cluster-domain'] = v;
        break;
      }
      case 'service-ip': {
        const v = String(value);
        const family = isIP(v);
        if (family === 0) throw new FeatureConfigError(key, `"${v}" is not an IP address; give an address inside the service CIDR ${facts.serviceCidr}`);
        const cidrs = parseCidrList(facts.serviceCidr);
        const inside = cidrs.some((c) => c.family === family && ipInCidr(v, c.text));
        if (!inside) throw new FeatureConfigError(key, `${v} is outside the service CIDR ${facts.serviceCidr}; give an address inside it`);
        if (cidrs.some((c) => nthAddress(c, 1) === v)) throw new FeatureConfigError(key, `${v} is the kubernetes Service's address; choose another one`);
        next.dns['service-ip'] = v;
        break;
      }
      case 'upstream-nameservers': {
        const list = parseList(value);
        if (!list.length) throw new FeatureConfigError(key, 'give at least one nameserver (an IP address or /etc/resolv.conf)');
        for (const u of list) checkUpstream(key, u);
        next.dns['upstream-nameservers'] = list;
        break;
      }
    }
  }
  try {
    checkLoadBalancer(next['load-balancer']);
  } catch (err) {
    if (err instanceof LoadBalancerConfigError) throw new FeatureConfigError(err.key, err.reason);
    throw err;
  }
  checkNeedsNetwork(next);
  return next;
}

/** The flat view `k8s get` prints: `feature.key` → value, for every feature (unimplemented ones disabled). */
export function flattenFeatureSettings(s: FeatureSettings): Record<string, unknown> {
  return {
    'network.enabled': s.network.enabled,
    'network.kube-proxy-enabled': true,
    'dns.enabled': s.dns.enabled,
    'dns.cluster-domain': s.dns['cluster-domain'],
    'dns.service-ip': s.dns['service-ip'],
    'dns.upstream-nameservers': s.dns['upstream-nameservers'],
    'local-storage.enabled': s['local-storage'].enabled,
    'local-storage.local-path': s['local-storage']['local-path'],
    'local-storage.reclaim-policy': s['local-storage']['reclaim-policy'],
    'local-storage.default': s['local-storage'].default,
    'metrics-server.enabled': s['metrics-server'].enabled,
    ...Object.fromEntries(LOAD_BALANCER_KEYS.map((k) => [`load-balancer.${k}`, s['load-balancer'][k]])),
    'ingress.enabled': s.ingress.enabled,
    'ingress.default-tls-secret': s.ingress['default-tls-secret'],
    'ingress.enable-proxy-protocol': s.ingress['enable-proxy-protocol'],
    'gateway.enabled': s.gateway.enabled,
    ...Object.fromEntries(FEATURE_NAMES.filter((f) => !isImplemented(f)).map((f) => [`${f}.enabled`, false])),
  };
}

/** `k8s get [feature[.key]]`: the whole view, one feature's keys, or one value. */
export function selectFeatureSettings(s: FeatureSettings, query?: string): unknown {
  const flat = flattenFeatureSettings(s);
  if (!query) return flat;
  if (query in flat) return flat[query];
  const prefix = `${query}.`;
  const sub = Object.fromEntries(Object.entries(flat).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  if (Object.keys(sub).length) return sub;
  const feature = query.split('.')[0]!;
  if (!isFeatureName(feature)) throw new FeatureConfigError(query, `unknown feature "${feature}"; known features: ${FEATURE_NAMES.join(', ')}`);
  throw new FeatureConfigError(query, `unknown key; ${feature} has ${Object.keys(flat).filter((k) => k.startsWith(`${feature}.`)).join(', ')}`);
}

function ipToBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((acc, o) => (acc << 8n) + BigInt(Number(o)), 0n);
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g || '0', 16)), 0n);
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const width = isIP(base) === 4 ? 32 : 128;
  if (isIP(ip) !== isIP(base)) return false;
  const shift = BigInt(width - Number(bits));
  return ipToBigInt(ip) >> shift === ipToBigInt(base) >> shift;
}
