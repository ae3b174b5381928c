// Bootstrap configuration: Canonical Kubernetes' keys (API v2), validated strictly.
// Every error names the offending key and says what to do; nothing is written on error.
import yaml from 'js-yaml';
import { isIP } from 'node:net';
import { z } from 'zod';
import { KEY_ALGORITHMS, KeyAlgorithm } from '../crypto/types.js';
import { tryParseDurationMs } from './duration.js';
import { cidrsOverlap, parseCidrList, isDnsName, Cidr, CidrError } from './net.js';
import { applyFeatureChanges, defaultFeatureSettings, FeatureConfigError, FeatureSettings } from './features.js';
import { ACCEPT_KEY, assertSingleLine, checkArgOverrides, checkConfigFiles, checkContainerdConfig, OverrideError, WeakenedFlag } from './overrides.js';
import { applySnapshotChanges, DEFAULT_SNAPSHOT_SETTINGS, SnapshotConfigError, SnapshotSettings } from '../snapshots/schedule.js';

export const SERVICES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubelet', 'containerd', 'etcd'] as const;
export type ServiceName = (typeof SERVICES)[number];

export class ConfigError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`invalid bootstrap configuration: ${key}: ${reason}`);
    this.name = 'ConfigError';
  }
}

const enabled = z.strictObject({ enabled: z.boolean().optional() });
const pem = (kind: 'CERTIFICATE' | 'PRIVATE KEY') =>
  z.string().refine((s) => new RegExp(`-----BEGIN [A-Z ]*${kind}-----[\\s\\S]+-----END [A-Z ]*${kind}-----`).test(s), {
    message: `must be a PEM ${kind === 'CERTIFICATE' ? 'certificate' : 'private key'} (-----BEGIN ${kind}-----)`,
  });
const crt = pem('CERTIFICATE').optional();
const key = pem('PRIVATE KEY').optional();
/** extra args: a null value deletes a default flag. */
const extraArgs = z.record(z.string().regex(/^--?[A-Za-z0-9][A-Za-z0-9-_.]*$/, 'flag names look like --flag-name'), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional();
const port = z.number().int().min(1).max(65535);
const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IP address' });

const clusterConfig = z.strictObject({
  network: z.strictObject({ enabled: z.boolean().optional(), 'kube-proxy-enabled': z.boolean().optional() }).optional(),
  dns: z
    .strictObject({
      enabled: z.boolean().optional(),
      'cluster-domain': z.string().refine(isDnsName, { message: 'must be a DNS domain such as cluster.local' }).optional(),
      'service-ip': ipAddress.optional(),
      'upstream-nameservers': z.array(z.string()).optional(),
    })
    .optional(),
  ingress: z.strictObject({ enabled: z.boolean().optional(), 'default-tls-secret': z.string().optional(), 'enable-proxy-protocol': z.boolean().optional() }).optional(),
  'load-balancer': z
    .strictObject({
      enabled: z.boolean().optional(),
      cidrs: z.array(z.string()).optional(),
      'l2-mode': z.boolean().optional(),
      'l2-interfaces': z.array(z.string()).optional(),
      'bgp-mode': z.boolean().optional(),
      'bgp-local-asn': z.number().int().optional(),
      'bgp-peer-address': z.string().optional(),
      'bgp-peer-asn': z.number().int().optional(),
      'bgp-peer-port': port.optional(),
    })
    .optional(),
  'local-storage': z
    .strictObject({
      enabled: z.boolean().optional(),
      'local-path': z.string().optional(),
      'reclaim-policy': z.enum(['Delete', 'Retain', 'Recycle']).optional(),
      default: z.boolean().optional(),
    })
    .optional(),
  gateway: enabled.optional(),
  'metrics-server': enabled.optional(),
  'cloud-provider': z.literal('external').optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

const duration = z.string().regex(/^(\d+(ms|mo|s|m|h|d|y))+$/, 'must be a duration such as 90m, 24h, 30d or 1y');

const certificatesConfig = z.strictObject({
  /** Lifetime of leaf certificates (CAs always get 10 years). */
  lifetime: duration.optional(),
  /** Renew when less than this fraction of the lifetime is left ... */
  'renew-before-fraction': z.number().gt(0).lt(1).optional(),
  /** ... or when less than this is left, whichever comes first. */
  'renew-before': duration.optional(),
  /** How often k8sd checks certificate expiry. */
  'check-interval': duration.optional(),
});

const securityConfig = z.strictObject({
  /** Audit logging: on by default at the policy's levels; "None" turns it off. */
  'audit-level': z.enum(['Policy', 'Metadata', 'None']).optional(),
  'pod-security': z
    .strictObject({
      enforce: z.enum(['privileged', 'baseline', 'restricted']).optional(),
      audit: z.enum(['privileged', 'baseline', 'restricted']).optional(),
      warn: z.enum(['privileged', 'baseline', 'restricted']).optional(),
      'exempt-namespaces': z.array(z.string()).optional(),
    })
    .optional(),
  'secrets-encryption': z.enum(['kms', 'aesgcm', 'none']).optional(),
});

const certificateKeys = [
  'ca', 'client-ca', 'front-proxy-ca', 'front-proxy-client', 'apiserver-kubelet-client', 'admin-client', 'kube-proxy-client',
  'kube-scheduler-client', 'kube-controller-manager-client', 'apiserver', 'kubelet', 'kubelet-client',
  'etcd-ca', 'etcd-server', 'etcd-peer', 'etcd-apiserver-client', 'kubelet-ca',
] as const;
export type SuppliedCertName = (typeof certificateKeys)[number];

const certShape: Record<string, z.ZodTypeAny> = {};
for (const name of certificateKeys) {
  certShape[`${name}-crt`] = crt;
  certShape[`${name}-key`] = key;
}
const extraArgsShape: Record<string, z.ZodTypeAny> = {};
for (const svc of SERVICES) extraArgsShape[`extra-node-${svc}-args`] = extraArgs;

export const bootstrapSchema = z.strictObject({
  'cluster-config': clusterConfig.optional(),
  'control-plane-taints': z.array(z.string()).optional(),
  'pod-cidr': z.string().optional(),
  'service-cidr': z.string().optional(),
  'disable-rbac': z.boolean().optional(),
  'disable-system-tuning': z.boolean().optional(),
  'secure-port': port.optional(),
  'k8s-dqlite-port': z.never({ message: 'k8s-dqlite was removed; use datastore-type etcd' }).optional(),
  'datastore-type': z.enum(['etcd', 'external']).optional(),
  'datastore-servers': z.array(z.string().url({ message: 'must be a URL such as https://10.0.0.5:2379' })).optional(),
  'datastore-ca-crt': crt,
  'datastore-client-crt': crt,
  'datastore-client-key': key,
  'etcd-port': port.optional(),
  'etcd-peer-port': port.optional(),
  'extra-sans': z.array(z.string()).optional(),
  'service-account-key': key,
  'extra-node-config-files': z.record(z.string(), z.string()).optional(),
  'extra-node-containerd-config': z.record(z.string(), z.unknown()).optional(),
  /** Security-critical flags (per service) the operator accepts that extra-node-<service>-args change. */
  [ACCEPT_KEY]: z.record(z.string(), z.array(z.string())).optional(),
  'containerd-base-dir': z.string().startsWith('/', 'must be an absolute path').optional(),
  // Our additions.
  'key-type': z.enum(KEY_ALGORITHMS as unknown as [KeyAlgorithm, ...KeyAlgorithm[]]).optional(),
  fips: z.boolean().optional(),
  'fail-cgroup-v1': z.boolean().optional(),
  security: securityConfig.optional(),
  certificates: certificatesConfig.optional(),
  /** Scheduled etcd snapshots (k3s's --etcd-snapshot-schedule-cron / --etcd-snapshot-retention). */
  'etcd-snapshot': z.strictObject({ schedule: z.string().optional(), retention: z.number().optional() }).optional(),
  ...certShape,
  ...extraArgsShape,
});

export type BootstrapConfigInput = z.infer<typeof bootstrapSchema>;

/** The bootstrap config with defaults applied and derived values computed. */
export interface BootstrapConfig {
  raw: BootstrapConfigInput;
  podCidrs: Cidr[];
  serviceCidrs: Cidr[];
  securePort: number;
  etcdPort: number;
  etcdPeerPort: number;
  datastoreType: 'etcd' | 'external';
  datastoreServers: string[];
  extraSans: string[];
  keyType: KeyAlgorithm;
  clusterDomain: string;
  extraArgs: Partial<Record<ServiceName, Record<string, string | null>>>;
  /** Security-critical flags the extra args change, accepted under accept-insecure-node-args. */
  weakened: WeakenedFlag[];
  /** extra-node-config-files: name -> content, written under $SNAP_COMMON/args/conf.d. */
  configFiles: Record<string, string>;
  supplied: Partial<Record<SuppliedCertName, { crt?: string; key?: string }>>;
  fips: boolean;
  failCgroupV1: boolean;
  auditLevel: 'Policy' | 'Metadata' | 'None';
  podSecurity: { enforce: string; audit: string; warn: string; exemptNamespaces: string[] };
  secretsEncryption: 'kms' | 'aesgcm' | 'none';
  certificates: { lifetimeMs: number; renewFraction: number; renewBeforeMs: number; checkIntervalMs: number };
  /** cluster-config: the features and their settings. */
  features: FeatureSettings;
  /** Taints control-plane nodes register with (`key[=value]:Effect`). */
  controlPlaneTaints: string[];
  etcdSnapshot: SnapshotSettings;
}

const TAINT = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?(=[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?:(NoSchedule|PreferNoSchedule|NoExecute)$/;

/**
 * cluster-config → feature settings. A plain bootstrap (no file) enables network, dns, gateway,
 * local-storage and metrics-server; with a file, a feature is on only when it says so, except
 * metrics-server, which is on unless it says otherwise (both as Canonical Kubernetes). Keys of features this
 * release does not deploy are refused rather than ignored.
 */
function featuresFrom(raw: BootstrapConfigInput, serviceCidr: string, plain: boolean): FeatureSettings {
  const cc = raw['cluster-config'] ?? {};
  const base = defaultFeatureSettings(serviceCidr, plain);
  const changes: Record<string, unknown> = {};
  for (const [feature, settings] of Object.entries(cc)) {
    const where = `cluster-config.${feature}`;
    if (feature === 'cloud-provider') throw new ConfigError(where, 'an external cloud provider is not supported in this release yet; leave the key out');
    if (feature === 'annotations') {
      const keys = Object.keys(settings as Record<string, string>);
      if (keys.length) throw new ConfigError(`${where}.${keys[0]}`, 'cluster annotations are not supported in this release yet; leave them out');
      continue;
    }
    for (const [k, v] of Object.entries(settings as Record<string, unknown>)) changes[`${feature}.${k}`] = v;
  }
  try {
    return applyFeatureChanges(base, changes, { serviceCidr }, { bootstrap: true });
  } catch (err) {
    if (err instanceof FeatureConfigError) throw new ConfigError(`cluster-config.${err.key}`, err.reason);
    throw err;
  }
}

const DAY = 86_400_000;
/** Durations already passed the schema's regex, so they always parse. */
function parseDurationMs(text: string): number {
  return tryParseDurationMs(text) ?? 0;
}

export const DEFAULT_POD_CIDR = '10.1.0.0/16';
export const DEFAULT_SERVICE_CIDR = '10.152.183.0/24';

function issuePath(path: PropertyKey[]): string {
  return path.map(String).join('.') || '(document)';
}

/** An empty text is a plain bootstrap (no file): the default features are enabled. */
export function parseBootstrapYaml(text: string): BootstrapConfig {
  let doc: unknown;
  try {
    doc = text.trim() === '' ? {} : yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (err) {
    const e = err as yaml.YAMLException;
    throw new ConfigError('(document)', `not valid YAML at line ${(e.mark?.line ?? 0) + 1}: ${e.reason ?? e.message}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('(document)', 'the bootstrap file must be a YAML mapping of keys to values');
  return validateBootstrapConfig(doc, { plain: text.trim() === '' });
}

export function validateBootstrapConfig(doc: unknown, opts: { plain?: boolean } = {}): BootstrapConfig {
  const parsed = bootstrapSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const where = issue.path.length ? `${issuePath(issue.path)}.` : '';
      throw new ConfigError(`${where}${issue.keys[0]}`, `unknown key; check the spelling against the documented bootstrap keys`);
    }
    throw new ConfigError(issuePath(issue.path), issue.message);
  }
  const raw = parsed.data;

  const cidrs = (k: 'pod-cidr' | 'service-cidr', fallback: string): Cidr[] => {
    try {
      return parseCidrList(raw[k] ?? fallback);
    } catch (err) {
      if (err instanceof CidrError) throw new ConfigError(k, err.message);
      throw err;
    }
  };
  const podCidrs = cidrs('pod-cidr', DEFAULT_POD_CIDR);
  const serviceCidrs = cidrs('service-cidr', DEFAULT_SERVICE_CIDR);
  for (const p of podCidrs) for (const s of serviceCidrs) {
    if (cidrsOverlap(p, s)) throw new ConfigError('service-cidr', `${s.text} overlaps pod-cidr ${p.text}; choose disjoint ranges`);
  }
  for (const s of serviceCidrs) {
    const max = s.family === 4 ? 12 : 108;
    if (s.prefix < max) throw new ConfigError('service-cidr', `${s.text} is larger than the apiserver allows (/${max} at most for IPv${s.family})`);
  }

  for (const [i, san] of (raw['extra-sans'] ?? []).entries()) {
    if (!isIP(san) && !isDnsName(san)) throw new ConfigError(`extra-sans[${i}]`, `"${san}" is neither an IP address nor a DNS name`);
  }
  if (raw['disable-rbac']) throw new ConfigError('disable-rbac', 'RBAC cannot be disabled: authorization is always Node,RBAC (CIS 1.2.6-1.2.8)');

  const datastoreType = raw['datastore-type'] ?? 'etcd';
  const servers = raw['datastore-servers'] ?? [];
  if (datastoreType === 'external') {
    if (!servers.length) throw new ConfigError('datastore-servers', 'datastore-type external needs at least one etcd URL');
    for (const [i, s] of servers.entries()) {
      if (!s.startsWith('https://')) throw new ConfigError(`datastore-servers[${i}]`, `"${s}" must use https:// (etcd client TLS is required)`);
    }
    for (const k of ['datastore-ca-crt', 'datastore-client-crt', 'datastore-client-key'] as const) {
      if (!raw[k]) throw new ConfigError(k, 'required with datastore-type external (etcd requires client certificates)');
    }
  } else {
    for (const k of ['datastore-servers', 'datastore-ca-crt', 'datastore-client-crt', 'datastore-client-key'] as const) {
      if (raw[k] !== undefined) throw new ConfigError(k, 'only valid with datastore-type external');
    }
  }
  const etcdPort = raw['etcd-port'] ?? 2379;
  const etcdPeerPort = raw['etcd-peer-port'] ?? 2380;
  const securePort = raw['secure-port'] ?? 6443;
  const ports: Array<[string, number]> = [['secure-port', securePort], ['etcd-port', etcdPort], ['etcd-peer-port', etcdPeerPort]];
  for (let i = 0; i < ports.length; i++) for (let j = i + 1; j < ports.length; j++) {
    if (ports[i]![1] === ports[j]![1]) throw new ConfigError(ports[j]![0], `port ${ports[j]![1]} is already used by ${ports[i]![0]}`);
  }
  if ([securePort, etcdPort, etcdPeerPort].includes(6400)) throw new ConfigError('secure-port', 'port 6400 is reserved for k8sd');

  const features = featuresFrom(raw, serviceCidrs.map((c) => c.text).join(','), opts.plain ?? false);
  const controlPlaneTaints = raw['control-plane-taints'] ?? [];
  for (const [i, t] of controlPlaneTaints.entries()) {
    if (!TAINT.test(t)) throw new ConfigError(`control-plane-taints[${i}]`, `"${t}" is not a taint; write key[=value]:Effect with Effect NoSchedule, PreferNoSchedule or NoExecute`);
  }

  const supplied: BootstrapConfig['supplied'] = {};
  const rawRecord = raw as Record<string, unknown>;
  for (const name of certificateKeys) {
    const c = rawRecord[`${name}-crt`] as string | undefined;
    const k = rawRecord[`${name}-key`] as string | undefined;
    if (k && !c) throw new ConfigError(`${name}-key`, `a key was given without ${name}-crt; supply both, or neither`);
    if (c) supplied[name] = k ? { crt: c, key: k } : { crt: c };
  }

  const extraArgs: BootstrapConfig['extraArgs'] = {};
  for (const svc of SERVICES) {
    const a = rawRecord[`extra-node-${svc}-args`] as Record<string, string | number | boolean | null> | undefined;
    if (!a) continue;
    extraArgs[svc] = Object.fromEntries(Object.entries(a).map(([flag, v]) => [flag.replace(/^-+/, ''), v === null ? null : String(v)]));
  }
  const configFiles = raw['extra-node-config-files'] ?? {};
  let weakened: WeakenedFlag[];
  try {
    weakened = checkArgOverrides(extraArgs, raw[ACCEPT_KEY], SERVICES);
    checkConfigFiles(configFiles);
    checkContainerdConfig(raw['extra-node-containerd-config']);
    if (raw['containerd-base-dir'] !== undefined) assertSingleLine('containerd-base-dir', raw['containerd-base-dir']);
  } catch (err) {
    if (err instanceof OverrideError) throw new ConfigError(err.key, err.reason);
    throw err;
  }

  const sec = raw.security ?? {};
  const ps = sec['pod-security'] ?? {};
  return {
    raw,
    podCidrs,
    serviceCidrs,
    securePort,
    etcdPort,
    etcdPeerPort,
    datastoreType,
    datastoreServers: servers,
    extraSans: raw['extra-sans'] ?? [],
    keyType: raw['key-type'] ?? 'ecdsa-p256',
    clusterDomain: features.dns['cluster-domain'],
    extraArgs,
    weakened,
    configFiles,
    supplied,
    fips: raw.fips ?? false,
    failCgroupV1: raw['fail-cgroup-v1'] ?? false,
    auditLevel: sec['audit-level'] ?? 'Policy',
    podSecurity: {
      enforce: ps.enforce ?? 'baseline',
      audit: ps.audit ?? 'restricted',
      warn: ps.warn ?? 'restricted',
      exemptNamespaces: ps['exempt-namespaces'] ?? ['kube-system'],
    },
    secretsEncryption: sec['secrets-encryption'] ?? 'kms',
    certificates: certificateSettings(raw.certificates ?? {}),
    features,
    controlPlaneTaints,
    etcdSnapshot: snapshotSettingsFrom(raw['etcd-snapshot'] ?? {}),
  };
}

function snapshotSettingsFrom(raw: NonNullable<BootstrapConfigInput['etcd-snapshot']>): SnapshotSettings {
  try {
    return applySnapshotChanges(DEFAULT_SNAPSHOT_SETTINGS, Object.fromEntries(Object.entries(raw).map(([k, v]) => [`etcd-snapshot.${k}`, v])));
  } catch (err) {
    if (err instanceof SnapshotConfigError) throw new ConfigError(err.key, err.reason);
    throw err;
  }
}

function certificateSettings(c: NonNullable<BootstrapConfigInput['certificates']>): BootstrapConfig['certificates'] {
  const lifetimeMs = c.lifetime ? parseDurationMs(c.lifetime) : 365 * DAY;
  if (lifetimeMs < 60_000) throw new ConfigError('certificates.lifetime', 'must be at least 1m');
  if (lifetimeMs > 10 * 365 * DAY) throw new ConfigError('certificates.lifetime', 'must not exceed the 10-year CA lifetime');
  const renewBeforeMs = c['renew-before'] ? parseDurationMs(c['renew-before']) : 30 * DAY;
  const checkIntervalMs = c['check-interval'] ? parseDurationMs(c['check-interval']) : 3_600_000;
  if (checkIntervalMs < 1000) throw new ConfigError('certificates.check-interval', 'must be at least 1s');
  return { lifetimeMs, renewFraction: c['renew-before-fraction'] ?? 1 / 3, renewBeforeMs, checkIntervalMs };
}
