// Admission control: one AdmissionConfiguration (apiserver.config.k8s.io/v1) carrying
// the PodSecurity defaults and the EventRateLimit limits inline, plus the
// --enable-admission-plugins list. CIS 1.2.3, 1.2.9–1.2.14 and 5.2.x.
import { GENERATED_CONF_FILES } from '../config/overrides.js';
import type { Layout } from '../layout.js';
import type { Args } from '../services/args.js';
import { SecuritySettingsError } from './errors.js';
import { SECRET_FILE_MODE, toYaml, type SecurityFile } from './files.js';

export type PodSecurityLevel = 'privileged' | 'baseline' | 'restricted';
const POD_SECURITY_LEVELS: readonly PodSecurityLevel[] = ['privileged', 'baseline', 'restricted'];

export interface PodSecuritySettings {
  /** Pods that violate this level are rejected. */
  enforce: PodSecurityLevel;
  /** Violations are recorded in the audit log. */
  audit: PodSecurityLevel;
  /** Violations are returned to the client as warnings. */
  warn: PodSecurityLevel;
  /** Pod Security Standards version: "latest" or "v1.<minor>". */
  version: string;
  exemptions: {
    namespaces: string[];
    usernames: string[];
    runtimeClasses: string[];
  };
}

export interface EventRateLimit {
  qps: number;
  burst: number;
}

export interface CachedEventRateLimit extends EventRateLimit {
  /** How many namespaces/users are tracked (least recently used dropped first). */
  cacheSize: number;
}

export interface EventRateLimitSettings {
  /** Off drops the plugin and its config (CIS 1.2.9 then fails). */
  enabled: boolean;
  server: EventRateLimit;
  namespace: CachedEventRateLimit;
  /** Optional per-user limit. */
  user?: CachedEventRateLimit;
}

export interface AdmissionSettings {
  podSecurity: PodSecuritySettings;
  eventRateLimit: EventRateLimitSettings;
  /** CIS 1.2.3: reject Services that set spec.externalIPs (CVE-2020-8554). */
  denyServiceExternalIPs: boolean;
  /**
   * CIS 1.2.11. Off by default: it forces a registry pull on every Pod start, which
   * breaks the side-loaded images of an air-gapped install. A documented WARN.
   */
  alwaysPullImages: boolean;
  /** More plugins to enable (on top of the upstream defaults and the ones above). */
  extraPlugins: string[];
}

export const DEFAULT_POD_SECURITY: Readonly<PodSecuritySettings> = Object.freeze({
  enforce: 'baseline',
  audit: 'restricted',
  warn: 'restricted',
  version: 'latest',
  exemptions: Object.freeze({ namespaces: ['kube-system'], usernames: [], runtimeClasses: [] }),
}) as Readonly<PodSecuritySettings>;

export const DEFAULT_EVENT_RATE_LIMIT: Readonly<EventRateLimitSettings> = Object.freeze({
  enabled: true,
  server: { qps: 50, burst: 100 },
  namespace: { qps: 50, burst: 100, cacheSize: 2000 },
});

export const DEFAULT_ADMISSION_SETTINGS: Readonly<AdmissionSettings> = Object.freeze({
  podSecurity: DEFAULT_POD_SECURITY,
  eventRateLimit: DEFAULT_EVENT_RATE_LIMIT,
  denyServiceExternalIPs: true,
  alwaysPullImages: false,
  extraPlugins: [],
});

/** Admission plugins kube-apiserver v1.37 knows (from its ordered plugin list). */
export const KNOWN_ADMISSION_PLUGINS: readonly string[] = [
  'AlwaysAdmit', 'NamespaceAutoProvision', 'NamespaceLifecycle', 'NamespaceExists', 'LimitPodHardAntiAffinityTopology',
  'LimitRanger', 'ServiceAccount', 'NodeRestriction', 'TaintNodesByCondition', 'AlwaysPullImages', 'ImagePolicyWebhook',
  'PodSecurity', 'PodNodeSelector', 'Priority', 'DefaultTolerationSeconds', 'PodTolerationRestriction', 'EventRateLimit',
  'ExtendedResourceToleration', 'DefaultStorageClass', 'StorageObjectInUseProtection', 'PodGroupProtection',
  'OwnerReferencesPermissionEnforcement', 'PersistentVolumeClaimResize', 'RuntimeClass', 'CertificateApproval',
  'CertificateSigning', 'ClusterTrustBundleAttest', 'CertificateSubjectRestriction', 'DefaultIngressClass',
  'DenyServiceExternalIPs', 'PodTopologyLabels', 'NodeDeclaredFeatureValidator', 'PodResizeValidator',
  'MutatingAdmissionPolicy', 'MutatingAdmissionWebhook', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionWebhook',
  'ResourceQuota', 'AlwaysDeny',
];
/** Never enabled: AlwaysAdmit fails CIS 1.2.10; AlwaysDeny stops the cluster. */
const FORBIDDEN_PLUGINS: readonly string[] = ['AlwaysAdmit', 'AlwaysDeny'];

export function admissionPaths(layout: Layout): { configFile: string } {
  return { configFile: layout.conf(GENERATED_CONF_FILES.admissionControl) };
}

export interface AdmissionSettingsInput {
  podSecurity?: Partial<Omit<PodSecuritySettings, 'exemptions'>> & { exemptions?: Partial<PodSecuritySettings['exemptions']> };
  eventRateLimit?: Partial<EventRateLimitSettings>;
  denyServiceExternalIPs?: boolean;
  alwaysPullImages?: boolean;
  extraPlugins?: string[];
}

function checkLevel(key: string, value: string): void {
  if (!POD_SECURITY_LEVELS.includes(value as PodSecurityLevel)) {
    throw new SecuritySettingsError(key, `"${value}" must be one of ${POD_SECURITY_LEVELS.join(', ')}`);
  }
}

function checkLimit(key: string, limit: EventRateLimit | CachedEventRateLimit): void {
  for (const [field, value] of Object.entries(limit)) {
    if (!Number.isInteger(value) || (value as number) < 1) throw new SecuritySettingsError(`${key}.${field}`, `must be a positive whole number, got ${String(value)}`);
  }
}

/** Fills in defaults and checks every value; errors name the setting. */
export function resolveAdmissionSettings(input: AdmissionSettingsInput = {}): AdmissionSettings {
  const defaults = DEFAULT_ADMISSION_SETTINGS;
  const podSecurity: PodSecuritySettings = {
    enforce: input.podSecurity?.enforce ?? defaults.podSecurity.enforce,
    audit: input.podSecurity?.audit ?? defaults.podSecurity.audit,
    warn: input.podSecurity?.warn ?? defaults.podSecurity.warn,
    version: input.podSecurity?.version ?? defaults.podSecurity.version,
    exemptions: {
      namespaces: [...(input.podSecurity?.exemptions?.namespaces ?? defaults.podSecurity.exemptions.namespaces)],
      usernames: [...(input.podSecurity?.exemptions?.usernames ?? defaults.podSecurity.exemptions.usernames)],
      runtimeClasses: [...(input.podSecurity?.exemptions?.runtimeClasses ?? defaults.podSecurity.exemptions.runtimeClasses)],
    },
  };
  checkLevel('admission.podSecurity.enforce', podSecurity.enforce);
  checkLevel('admission.podSecurity.audit', podSecurity.audit);
  checkLevel('admission.podSecurity.warn', podSecurity.warn);
  if (!/^(latest|v1\.(0|[1-9][0-9]*))$/.test(podSecurity.version)) {
    throw new SecuritySettingsError('admission.podSecurity.version', `"${podSecurity.version}" must be "latest" or "v1.<minor>", e.g. "v1.37"`);
  }
  for (const [index, namespace] of podSecurity.exemptions.namespaces.entries()) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace) || namespace.length > 63) {
      throw new SecuritySettingsError(`admission.podSecurity.exemptions.namespaces[${index}]`, `"${namespace}" is not a valid namespace name`);
    }
  }

  const eventRateLimit: EventRateLimitSettings = {
    enabled: input.eventRateLimit?.enabled ?? defaults.eventRateLimit.enabled,
    server: { ...(input.eventRateLimit?.server ?? defaults.eventRateLimit.server) },
    namespace: { ...(input.eventRateLimit?.namespace ?? defaults.eventRateLimit.namespace) },
  };
  const user = input.eventRateLimit?.user ?? defaults.eventRateLimit.user;
  if (user) eventRateLimit.user = { ...user };
  checkLimit('admission.eventRateLimit.server', eventRateLimit.server);
  checkLimit('admission.eventRateLimit.namespace', eventRateLimit.namespace);
  if (eventRateLimit.user) checkLimit('admission.eventRateLimit.user', eventRateLimit.user);

  const extraPlugins = [...(input.extraPlugins ?? defaults.extraPlugins)];
  for (const [index, plugin] of extraPlugins.entries()) {
    const key = `admission.extraPlugins[${index}]`;
    if (FORBIDDEN_PLUGINS.includes(plugin)) throw new SecuritySettingsError(key, `${plugin} is never enabled (CIS 1.2.10 / it would stop the cluster)`);
    if (!KNOWN_ADMISSION_PLUGINS.includes(plugin)) {
      throw new SecuritySettingsError(key, `"${plugin}" is not a kube-apiserver admission plugin; see KNOWN_ADMISSION_PLUGINS for the exact names`);
    }
    if (plugin === 'EventRateLimit' || plugin === 'DenyServiceExternalIPs' || plugin === 'AlwaysPullImages') {
      throw new SecuritySettingsError(key, `${plugin} has its own setting; set that instead of listing it here`);
    }
  }
  return {
    podSecurity,
    eventRateLimit,
    denyServiceExternalIPs: input.denyServiceExternalIPs ?? defaults.denyServiceExternalIPs,
    alwaysPullImages: input.alwaysPullImages ?? defaults.alwaysPullImages,
    extraPlugins,
  };
}

interface AdmissionPluginConfiguration {
  name: string;
  configuration: object;
}

export interface AdmissionConfigurationDocument {
  apiVersion: 'apiserver.config.k8s.io/v1';
  kind: 'AdmissionConfiguration';
  plugins: AdmissionPluginConfiguration[];
}

export function podSecurityConfiguration(settings: PodSecuritySettings): object {
  return {
    apiVersion: 'pod-security.admission.config.k8s.io/v1',
    kind: 'PodSecurityConfiguration',
    defaults: {
      enforce: settings.enforce,
      'enforce-version': settings.version,
      audit: settings.audit,
      'audit-version': settings.version,
      warn: settings.warn,
      'warn-version': settings.version,
    },
    exemptions: {
      usernames: [...settings.exemptions.usernames],
      runtimeClasses: [...settings.exemptions.runtimeClasses],
      namespaces: [...settings.exemptions.namespaces],
    },
  };
}

export function eventRateLimitConfiguration(settings: EventRateLimitSettings): object {
  const limits: Array<{ type: string; qps: number; burst: number; cacheSize?: number }> = [
    { type: 'Server', qps: settings.server.qps, burst: settings.server.burst },
    { type: 'Namespace', ...settings.namespace },
  ];
  if (settings.user) limits.push({ type: 'User', ...settings.user });
  return { apiVersion: 'eventratelimit.admission.k8s.io/v1alpha1', kind: 'Configuration', limits };
}

export function admissionConfiguration(input: AdmissionSettingsInput = {}): AdmissionConfigurationDocument {
  const settings = resolveAdmissionSettings(input);
  const plugins: AdmissionPluginConfiguration[] = [{ name: 'PodSecurity', configuration: podSecurityConfiguration(settings.podSecurity) }];
  if (settings.eventRateLimit.enabled) plugins.push({ name: 'EventRateLimit', configuration: eventRateLimitConfiguration(settings.eventRateLimit) });
  return { apiVersion: 'apiserver.config.k8s.io/v1', kind: 'AdmissionConfiguration', plugins };
}

export function admissionConfigurationYaml(input: AdmissionSettingsInput = {}): string {
  return toYaml(admissionConfiguration(input));
}

/** Plugins to add to the upstream default-on set (which already has PodSecurity, ServiceAccount, NamespaceLifecycle). */
export function enabledAdmissionPlugins(input: AdmissionSettingsInput = {}): string[] {
  const settings = resolveAdmissionSettings(input);
  const plugins = ['NodeRestriction'];
  if (settings.eventRateLimit.enabled) plugins.push('EventRateLimit');
  if (settings.denyServiceExternalIPs) plugins.push('DenyServiceExternalIPs');
  if (settings.alwaysPullImages) plugins.push('AlwaysPullImages');
  for (const plugin of settings.extraPlugins) if (!plugins.includes(plugin)) plugins.push(plugin);
  return plugins;
}

/** kube-apiserver admission flags. Nothing is disabled, so CIS 1.2.12/1.2.13 hold. */
export function admissionArgs(layout: Layout, input: AdmissionSettingsInput = {}): Args {
  return {
    'enable-admission-plugins': enabledAdmissionPlugins(input).join(','),
    'admission-control-config-file': admissionPaths(layout).configFile,
  };
}

export function files(layout: Layout, input: AdmissionSettingsInput = {}): SecurityFile[] {
  return [{ path: admissionPaths(layout).configFile, content: admissionConfigurationYaml(input), mode: SECRET_FILE_MODE }];
}
