// Charm config options turned into what k8s understands. Every error names the option,
// and its message is short enough to show as a Blocked status.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { Config } from '../../runtime/src/model.js';

export class OptionValueError extends Error {
  constructor(
    readonly option: string,
    readonly problem: string,
  ) {
    super(`${option}: ${problem}`);
    this.name = 'OptionValueError';
  }
}

export type NodeRole = 'control-plane' | 'worker';

export interface ServiceArgsOption {
  readonly service: 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kube-proxy' | 'kubelet' | 'etcd';
  readonly option: string;
  readonly roles: readonly NodeRole[];
}

export const SERVICE_ARGS_OPTIONS: readonly ServiceArgsOption[] = [
  { service: 'kube-apiserver', option: 'kube-apiserver-extra-args', roles: ['control-plane'] },
  { service: 'kube-controller-manager', option: 'kube-controller-manager-extra-args', roles: ['control-plane'] },
  { service: 'kube-scheduler', option: 'kube-scheduler-extra-args', roles: ['control-plane'] },
  { service: 'kube-proxy', option: 'kube-proxy-extra-args', roles: ['control-plane', 'worker'] },
  { service: 'kubelet', option: 'kubelet-extra-args', roles: ['control-plane', 'worker'] },
  { service: 'etcd', option: 'datastore-extra-args', roles: ['control-plane'] },
];

/** Feature toggles: config option → k8s cluster-config feature. */
export const FEATURE_OPTIONS: ReadonlyArray<{ readonly feature: string; readonly option: string }> = [
  { feature: 'network', option: 'network-enabled' },
  { feature: 'dns', option: 'dns-enabled' },
  { feature: 'gateway', option: 'gateway-enabled' },
  { feature: 'ingress', option: 'ingress-enabled' },
  { feature: 'load-balancer', option: 'load-balancer-enabled' },
  { feature: 'local-storage', option: 'local-storage-enabled' },
  { feature: 'metrics-server', option: 'metrics-server-enabled' },
];

function tokens(text: string): string[] {
  return text.split(/\s+/).filter((token) => token !== '');
}

/** 'a=1 b=2' → {a: '1', b: '2'} */
export function parseKeyValues(option: string, text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const token of tokens(text)) {
    const at = token.indexOf('=');
    if (at <= 0) throw new OptionValueError(option, `'${token}' is not key=value`);
    result[token.slice(0, at)] = token.slice(at + 1);
  }
  return result;
}

/** 'v=2 --max-pods=200' → {'--v': '2', '--max-pods': '200'} */
export function parseExtraArgs(option: string, text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(parseKeyValues(option, text))) {
    const flag = key.startsWith('--') ? key : `--${key.replace(/^-/, '')}`;
    if (!/^--[A-Za-z0-9][A-Za-z0-9._-]*$/.test(flag)) throw new OptionValueError(option, `'${key}' is not a flag name`);
    result[flag] = value;
  }
  return result;
}

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Space- or comma-separated IP addresses and DNS names. */
export function parseSans(option: string, text: string): string[] {
  const sans = text.split(/[\s,]+/).filter((san) => san !== '');
  for (const san of sans) {
    if (isIP(san) === 0 && !DNS_NAME.test(san)) throw new OptionValueError(option, `'${san}' is neither an IP address nor a DNS name`);
  }
  return [...new Set(sans)];
}

/** One or two comma-separated CIDRs, at most one IPv4 and one IPv6. Empty means k8s' default. */
export function parseCidrs(option: string, text: string): string[] {
  const cidrs = text.split(',').map((cidr) => cidr.trim()).filter((cidr) => cidr !== '');
  if (cidrs.length > 2) throw new OptionValueError(option, 'give at most two CIDRs (one IPv4, one IPv6)');
  let v4 = 0;
  let v6 = 0;
  for (const cidr of cidrs) {
    const [address, prefix, ...rest] = cidr.split('/');
    const bits = Number(prefix);
    if (address === undefined || prefix === undefined || rest.length > 0 || !/^\d+$/.test(prefix)) {
      throw new OptionValueError(option, `'${cidr}' is not a CIDR such as 10.1.0.0/16`);
    }
    if (isIPv4(address) && bits <= 32) v4 += 1;
    else if (isIPv6(address) && bits <= 128) v6 += 1;
    else throw new OptionValueError(option, `'${cidr}' is not a CIDR such as 10.1.0.0/16`);
  }
  if (v4 > 1 || v6 > 1) throw new OptionValueError(option, 'give at most one IPv4 and one IPv6 CIDR');
  return cidrs;
}

const LABEL_NAME = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export interface NodeLabels {
  readonly set: Readonly<Record<string, string>>;
  /** 'key-' tokens: labels to remove. */
  readonly remove: readonly string[];
}

/** 'a=b team=x old-' → set a and team, remove old. */
export function parseNodeLabels(option: string, text: string): NodeLabels {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const token of tokens(text)) {
    const at = token.indexOf('=');
    if (at < 0 && token.endsWith('-') && LABEL_NAME.test(token.slice(0, -1))) {
      remove.push(token.slice(0, -1));
      continue;
    }
    if (at <= 0) throw new OptionValueError(option, `'${token}' is not key=value (or key- to remove a label)`);
    const key = token.slice(0, at);
    const value = token.slice(at + 1);
    if (!LABEL_NAME.test(key)) throw new OptionValueError(option, `'${key}' is not a valid label name`);
    if (!LABEL_VALUE.test(value)) throw new OptionValueError(option, `'${value}' is not a valid label value`);
    set[key] = value;
  }
  return { set, remove };
}

const TAINT_EFFECTS = new Set(['NoSchedule', 'PreferNoSchedule', 'NoExecute']);

/** 'key=value:Effect key:Effect' → the kubelet's --register-with-taints list. */
export function parseTaints(option: string, text: string): string[] {
  return tokens(text).map((taint) => {
    const colon = taint.lastIndexOf(':');
    const effect = colon > 0 ? taint.slice(colon + 1) : '';
    const [key = '', value, ...rest] = taint.slice(0, Math.max(colon, 0)).split('=');
    if (!TAINT_EFFECTS.has(effect) || !LABEL_NAME.test(key) || rest.length > 0 || (value !== undefined && !LABEL_VALUE.test(value))) {
      throw new OptionValueError(option, `'${taint}' is not a taint such as key=value:NoSchedule (effects: NoSchedule, PreferNoSchedule, NoExecute)`);
    }
    return taint;
  });
}

/**
 * extra-node-<service>-args blocks for a node of this role; bootstrap-node-taints becomes the
 * kubelet's --register-with-taints (taints apply when the node first registers).
 */
export function extraNodeArgs(config: Config, role: NodeRole): Record<string, Record<string, string>> {
  const blocks: Record<string, Record<string, string>> = {};
  for (const { service, option, roles } of SERVICE_ARGS_OPTIONS) {
    if (!roles.includes(role) || !config.has(option)) continue;
    const args = parseExtraArgs(option, config.string(option));
    if (Object.keys(args).length > 0) blocks[`extra-node-${service}-args`] = args;
  }
  const taints = config.has('bootstrap-node-taints') ? parseTaints('bootstrap-node-taints', config.string('bootstrap-node-taints')) : [];
  if (taints.length > 0) {
    const kubelet = blocks['extra-node-kubelet-args'] ?? {};
    if ('--register-with-taints' in kubelet) {
      throw new OptionValueError('bootstrap-node-taints', 'kubelet-extra-args sets register-with-taints too; give the taints in one of the two');
    }
    blocks['extra-node-kubelet-args'] = { ...kubelet, '--register-with-taints': taints.join(',') };
  }
  return blocks;
}

export const ACCEPT_INSECURE_OPTION = 'accept-insecure-node-args';

/**
 * accept-insecure-node-args ('kubelet:read-only-port kube-apiserver:--profiling') → k8sd's
 * accept-insecure-node-args mapping. Each entry must name a flag the service's *-extra-args option
 * sets; k8sd then decides whether the flag is security-critical (and refuses an acceptance that is
 * not needed). Empty when the option is unset.
 */
export function acceptedInsecureArgs(config: Config, role: NodeRole): Record<string, string[]> {
  if (!config.has(ACCEPT_INSECURE_OPTION)) return {};
  const accepted: Record<string, string[]> = {};
  const args = extraNodeArgs(config, role);
  for (const entry of tokens(config.string(ACCEPT_INSECURE_OPTION))) {
    const colon = entry.indexOf(':');
    const service = entry.slice(0, Math.max(colon, 0));
    const flag = `--${entry.slice(colon + 1).replace(/^-+/, '')}`;
    const spec = SERVICE_ARGS_OPTIONS.find((candidate) => candidate.service === service && candidate.roles.includes(role));
    if (colon <= 0 || !spec) {
      const services = SERVICE_ARGS_OPTIONS.filter((candidate) => candidate.roles.includes(role)).map((candidate) => candidate.service);
      throw new OptionValueError(ACCEPT_INSECURE_OPTION, `'${entry}' is not <service>:<flag> with a service of ${services.join(', ')}`);
    }
    if (!(flag in (args[`extra-node-${service}-args`] ?? {}))) {
      throw new OptionValueError(ACCEPT_INSECURE_OPTION, `'${entry}' accepts ${flag}, which ${spec.option} does not set; remove it`);
    }
    accepted[service] = [...(accepted[service] ?? []), flag];
  }
  return accepted;
}

/** The node settings both the bootstrap and the join documents carry: extra args and their acceptances. */
export function nodeDocument(config: Config, role: NodeRole): Record<string, unknown> {
  const accepted = acceptedInsecureArgs(config, role);
  return { ...extraNodeArgs(config, role), ...(Object.keys(accepted).length > 0 ? { [ACCEPT_INSECURE_OPTION]: accepted } : {}) };
}
