// The feature options of Canonical's k8s charm, as one table: option → the `k8s set` key
// (feature.key) and how its value is checked. The leader sends what changed with one `k8s set`;
// the bootstrap document carries the same settings under cluster-config.
import { isIP } from 'node:net';
import type { Config } from '../../runtime/src/model.js';
import { FEATURE_OPTIONS, OptionValueError } from '../../k8s-common/src/options.js';

type Value = string | boolean | number | string[];

interface SettingOption {
  readonly option: string;
  readonly feature: string;
  /** The key under the feature: `k8s set <feature>.<key>=…`. */
  readonly key: string;
  /** The value for k8s, or undefined to leave k8s' default (an empty string option). */
  readonly read: (config: Config, option: string) => Value | undefined;
}

const DNS_NAME = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const K8S_NAME = /^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$/;
const INTERFACE = /^[A-Za-z0-9_.:@-]{1,15}$/;

function words(text: string): string[] {
  return text.split(/[\s,]+/).filter((word) => word !== '');
}

function optionalString(check: (option: string, value: string) => void) {
  return (config: Config, option: string): string | undefined => {
    const value = config.string(option).trim();
    if (value === '') return undefined;
    check(option, value);
    return value;
  };
}

function list(check: (option: string, item: string) => void) {
  return (config: Config, option: string): string[] | undefined => {
    const items = words(config.string(option));
    for (const item of items) check(option, item);
    return items.length > 0 ? items : undefined;
  };
}

const bool = (config: Config, option: string): boolean => config.boolean(option);

function integer(min: number, max: number) {
  return (config: Config, option: string): number => {
    const value = config.int(option);
    if (value < min || value > max) throw new OptionValueError(option, `${value} is outside ${min}..${max}`);
    return value;
  };
}

function ipAddress(option: string, value: string): void {
  if (isIP(value) === 0) throw new OptionValueError(option, `'${value}' is not an IP address`);
}

function cidrOrRange(option: string, value: string): void {
  const range = value.split('-');
  if (range.length === 2 && range.every((ip) => isIP(ip) !== 0)) return;
  const [address, bits, ...rest] = value.split('/');
  const width = address !== undefined ? (isIP(address) === 4 ? 32 : isIP(address) === 6 ? 128 : 0) : 0;
  if (width === 0 || bits === undefined || rest.length > 0 || !/^\d+$/.test(bits) || Number(bits) > width) {
    throw new OptionValueError(option, `'${value}' is neither a CIDR (10.0.0.0/28) nor an address range (10.0.0.10-10.0.0.20)`);
  }
}

function nameserver(option: string, value: string): void {
  if (value.startsWith('/')) return;
  const host = value.replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([^:]+):\d+$/, '$1');
  if (isIP(host) === 0) throw new OptionValueError(option, `'${value}' is neither an IP address (optionally with :port) nor a resolv.conf path`);
}

export const SETTING_OPTIONS: readonly SettingOption[] = [
  { option: 'dns-cluster-domain', feature: 'dns', key: 'cluster-domain', read: optionalString((o, v) => { if (!DNS_NAME.test(v)) throw new OptionValueError(o, `'${v}' is not a DNS domain such as cluster.local`); }) },
  { option: 'dns-service-ip', feature: 'dns', key: 'service-ip', read: optionalString(ipAddress) },
  { option: 'dns-upstream-nameservers', feature: 'dns', key: 'upstream-nameservers', read: list(nameserver) },
  {
    option: 'local-storage-local-path',
    feature: 'local-storage',
    key: 'local-path',
    read: optionalString((o, v) => {
      if (!v.startsWith('/') || /[\s\0]/.test(v) || v.split('/').includes('..')) throw new OptionValueError(o, `'${v}' is not a plain absolute path such as /var/snap/k8s/common/rawfile-storage`);
    }),
  },
  {
    option: 'local-storage-reclaim-policy',
    feature: 'local-storage',
    key: 'reclaim-policy',
    read: optionalString((o, v) => { if (v !== 'Delete' && v !== 'Retain') throw new OptionValueError(o, `'${v}' is not Delete or Retain`); }),
  },
  { option: 'local-storage-default', feature: 'local-storage', key: 'default', read: bool },
  { option: 'load-balancer-cidrs', feature: 'load-balancer', key: 'cidrs', read: list(cidrOrRange) },
  { option: 'load-balancer-l2-mode', feature: 'load-balancer', key: 'l2-mode', read: bool },
  {
    option: 'load-balancer-l2-interfaces',
    feature: 'load-balancer',
    key: 'l2-interfaces',
    read: list((o, v) => { if (!INTERFACE.test(v)) throw new OptionValueError(o, `'${v}' is not a network interface name`); }),
  },
  { option: 'load-balancer-bgp-mode', feature: 'load-balancer', key: 'bgp-mode', read: bool },
  { option: 'load-balancer-bgp-local-asn', feature: 'load-balancer', key: 'bgp-local-asn', read: integer(1, 4294967294) },
  { option: 'load-balancer-bgp-peer-address', feature: 'load-balancer', key: 'bgp-peer-address', read: optionalString(ipAddress) },
  { option: 'load-balancer-bgp-peer-asn', feature: 'load-balancer', key: 'bgp-peer-asn', read: integer(1, 4294967294) },
  { option: 'load-balancer-bgp-peer-port', feature: 'load-balancer', key: 'bgp-peer-port', read: integer(1, 65535) },
  { option: 'ingress-enable-proxy-protocol', feature: 'ingress', key: 'enable-proxy-protocol', read: bool },
  {
    option: 'ingress-default-tls-secret',
    feature: 'ingress',
    key: 'default-tls-secret',
    read: optionalString((o, v) => { if (!K8S_NAME.test(v)) throw new OptionValueError(o, `'${v}' is not a Kubernetes Secret name`); }),
  },
];

export type FeatureSettings = Record<string, Record<string, Value>>;

/**
 * Every feature's settings from the options: `enabled` for each, and the settings of the enabled
 * ones (a disabled feature's settings wait until it is enabled). Throws OptionValueError naming the
 * first bad option, whether its feature is enabled or not.
 */
export function featureSettings(config: Config): FeatureSettings {
  const settings: FeatureSettings = {};
  for (const { feature, option } of FEATURE_OPTIONS) settings[feature] = { enabled: config.boolean(option) };
  for (const { option, feature, key, read } of SETTING_OPTIONS) {
    if (!config.has(option)) continue;
    const value = read(config, option);
    if (value !== undefined && settings[feature]?.enabled === true) settings[feature] = { ...settings[feature], [key]: value };
  }
  const lb = settings['load-balancer'];
  if (lb?.enabled === true && lb['bgp-mode'] === true && lb['bgp-peer-address'] === undefined) {
    throw new OptionValueError('load-balancer-bgp-peer-address', 'load-balancer-bgp-mode=true needs the BGP peer address');
  }
  return settings;
}

/** 'feature.key' → the value as `k8s set` takes it (lists comma-separated). */
export function flatSettings(settings: FeatureSettings): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [feature, values] of Object.entries(settings)) {
    for (const [key, value] of Object.entries(values)) flat[`${feature}.${key}`] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return flat;
}

/**
 * The `k8s set` arguments that take the cluster from `applied` to `wanted`. A setting that is no
 * longer wanted (its option emptied, or its feature disabled) is not reset: k8s keeps it, and
 * `<feature>.enabled=false` is what turns the feature off.
 */
export function settingChanges(wanted: Readonly<Record<string, string>>, applied: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(wanted).filter(([key, value]) => applied[key] !== value));
}
