// Join configuration (`k8s join-cluster --file`): Canonical Kubernetes' ControlPlaneJoinConfig
// and WorkerJoinConfig keys, validated strictly. Every error names the key; nothing is written on error.
import yaml from 'js-yaml';
import { isIP } from 'node:net';
import { z } from 'zod';
import { isDnsName } from './net.js';
import { ACCEPT_KEY, checkArgOverrides, checkConfigFiles, checkContainerdConfig, OverrideError, WeakenedFlag } from './overrides.js';

export type JoinRole = 'control-plane' | 'worker';

export const CONTROL_PLANE_JOIN_SERVICES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kube-proxy', 'kubelet', 'containerd', 'etcd'] as const;
export const WORKER_JOIN_SERVICES = ['kube-proxy', 'kubelet', 'containerd', 'k8s-apiserver-proxy'] as const;
export type JoinService = (typeof CONTROL_PLANE_JOIN_SERVICES)[number] | (typeof WORKER_JOIN_SERVICES)[number];

const CONTROL_PLANE_CERTS = [
  'front-proxy-client', 'admin-client', 'kube-proxy-client', 'kube-scheduler-client', 'kube-controller-manager-client',
  'apiserver', 'kubelet', 'kubelet-client', 'etcd-server', 'etcd-peer',
] as const;
const WORKER_CERTS = ['kubelet', 'kubelet-client', 'kube-proxy-client'] as const;

export class JoinConfigError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`invalid join configuration: ${key}: ${reason}`);
    // The CLI prints ConfigErrors without a stack trace.
    this.name = 'ConfigError';
  }
}

const pem = (kind: 'CERTIFICATE' | 'PRIVATE KEY') =>
  z.string().refine((s) => new RegExp(`-----BEGIN [A-Z ]*${kind}-----[\\s\\S]+-----END [A-Z ]*${kind}-----`).test(s), {
    message: `must be a PEM ${kind === 'CERTIFICATE' ? 'certificate' : 'private key'} (-----BEGIN ${kind}-----)`,
  });
const extraArgs = z
  .record(z.string().regex(/^--?[A-Za-z0-9][A-Za-z0-9-_.]*$/, 'flag names look like --flag-name'), z.union([z.string(), z.number(), z.boolean(), z.null()]))
  .optional();

function schemaFor(role: JoinRole) {
  const shape: Record<string, z.ZodTypeAny> = {
    'disable-system-tuning': z.boolean().optional(),
    'extra-node-config-files': z.record(z.string(), z.string()).optional(),
    [ACCEPT_KEY]: z.record(z.string(), z.array(z.string())).optional(),
    'extra-node-containerd-config': z.record(z.string(), z.unknown()).optional(),
    'containerd-base-dir': z.string().startsWith('/', 'must be an absolute path').optional(),
    fips: z.boolean().optional(),
  };
  if (role === 'control-plane') shape['extra-sans'] = z.array(z.string()).optional();
  for (const name of role === 'control-plane' ? CONTROL_PLANE_CERTS : WORKER_CERTS) {
    shape[`${name}-crt`] = pem('CERTIFICATE').optional();
    shape[`${name}-key`] = pem('PRIVATE KEY').optional();
  }
  for (const svc of role === 'control-plane' ? CONTROL_PLANE_JOIN_SERVICES : WORKER_JOIN_SERVICES) shape[`extra-node-${svc}-args`] = extraArgs;
  return z.strictObject(shape);
}

export interface JoinConfig {
  role: JoinRole;
  raw: Record<string, unknown>;
  extraSans: string[];
  /** Flag overrides per service; null deletes a default flag. */
  extraArgs: Partial<Record<JoinService, Record<string, string | null>>>;
  /** Security-critical flags the extra args change, accepted under accept-insecure-node-args. */
  weakened: WeakenedFlag[];
  /** Supplied certificates, keyed like the bootstrap config (e.g. "apiserver", "kubelet-client"). */
  supplied: Record<string, { crt?: string; key?: string }>;
  configFiles: Record<string, string>;
  containerdConfig: Record<string, unknown>;
  /** fips: true asks that this node run in FIPS mode: the join is refused unless k8sd does. */
  fips: boolean;
}

export function parseJoinYaml(text: string, role: JoinRole): JoinConfig {
  let doc: unknown;
  try {
    doc = text.trim() === '' ? {} : yaml.load(text, { schema: yaml.CORE_SCHEMA });
  } catch (err) {
    const e = err as yaml.YAMLException;
    throw new JoinConfigError('(document)', `not valid YAML at line ${(e.mark?.line ?? 0) + 1}: ${e.reason ?? e.message}`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new JoinConfigError('(document)', 'the join file must be a YAML mapping of keys to values');
  return validateJoinConfig(doc, role);
}

export function validateJoinConfig(doc: unknown, role: JoinRole): JoinConfig {
  const parsed = schemaFor(role).safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const key = `${where ? `${where}.` : ''}${issue.keys[0]}`;
      const hint = role === 'worker' ? ' (a worker join file accepts only worker keys: kubelet/kube-proxy/containerd/k8s-apiserver-proxy args and certificates)' : '';
      throw new JoinConfigError(key, `unknown key for a ${role} join${hint}; check the spelling against the documented join keys`);
    }
    throw new JoinConfigError(where || '(document)', issue.message);
  }
  const raw = parsed.data as Record<string, unknown>;
  if (raw['containerd-base-dir'] !== undefined) {
    throw new JoinConfigError('containerd-base-dir', 'is not supported: containerd keeps its files under the node root (K8S_ROOT); remove the key');
  }
  const extraSans = (raw['extra-sans'] as string[] | undefined) ?? [];
  for (const [i, san] of extraSans.entries()) {
    if (!isIP(san) && !isDnsName(san)) throw new JoinConfigError(`extra-sans[${i}]`, `"${san}" is neither an IP address nor a DNS name`);
  }
  const supplied: JoinConfig['supplied'] = {};
  for (const name of role === 'control-plane' ? CONTROL_PLANE_CERTS : WORKER_CERTS) {
    const c = raw[`${name}-crt`] as string | undefined;
    const k = raw[`${name}-key`] as string | undefined;
    if (k && !c) throw new JoinConfigError(`${name}-key`, `a key was given without ${name}-crt; supply both, or neither`);
    if (c && !k) throw new JoinConfigError(`${name}-crt`, `a certificate was given without ${name}-key; supply both, or neither`);
    if (c && k) supplied[name] = { crt: c, key: k };
  }
  if (role === 'worker' && Object.keys(supplied).length) {
    // Workers hold no CA keys; the control plane signs their certificates. Supplied ones are
    // accepted only as a complete external set, which this k8sd does not manage yet.
    throw new JoinConfigError(Object.keys(supplied).map((n) => `${n}-crt`)[0]!, 'supplying worker certificates is not supported; the control plane issues them');
  }
  const extraArgs: JoinConfig['extraArgs'] = {};
  for (const svc of role === 'control-plane' ? CONTROL_PLANE_JOIN_SERVICES : WORKER_JOIN_SERVICES) {
    const a = raw[`extra-node-${svc}-args`] as Record<string, string | number | boolean | null> | undefined;
    if (!a) continue;
    extraArgs[svc] = Object.fromEntries(Object.entries(a).map(([flag, v]) => [flag.replace(/^-+/, ''), v === null ? null : String(v)]));
  }
  const configFiles = (raw['extra-node-config-files'] as Record<string, string> | undefined) ?? {};
  let weakened: WeakenedFlag[];
  try {
    weakened = checkArgOverrides(extraArgs, raw[ACCEPT_KEY] as Record<string, string[]> | undefined, role === 'control-plane' ? CONTROL_PLANE_JOIN_SERVICES : WORKER_JOIN_SERVICES);
    checkConfigFiles(configFiles);
    checkContainerdConfig(raw['extra-node-containerd-config'] as Record<string, unknown> | undefined);
  } catch (err) {
    if (err instanceof OverrideError) throw new JoinConfigError(err.key, err.reason);
    throw err;
  }
  return {
    role,
    raw,
    extraSans,
    extraArgs,
    weakened,
    supplied,
    configFiles,
    containerdConfig: (raw['extra-node-containerd-config'] as Record<string, unknown> | undefined) ?? {},
    fips: raw.fips === true,
  };
}
