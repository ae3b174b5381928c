// Charm config → the bootstrap and control-plane join documents the k8s CLI reads,
// and the record of the options that cannot change once the cluster exists.
import type { Config } from '../../runtime/src/model.js';
import { nodeDocument, parseCidrs, parseNodeLabels, parseSans } from '../../k8s-common/src/options.js';
import { featureSettings } from './cluster-config.js';
import { parseCustomRegistries, REGISTRIES_OPTION } from '../../k8s-common/src/registries.js';
import { datastoreChoice, externalDatastoreDocument, type EtcdConnection } from './etcd.js';

/** The options k8s fixes at bootstrap. */
export const IMMUTABLE_OPTIONS = ['bootstrap-datastore', 'bootstrap-pod-cidr', 'bootstrap-service-cidr'] as const;
export type ImmutableOption = (typeof IMMUTABLE_OPTIONS)[number];
export type BootstrapRecord = Readonly<Record<ImmutableOption, string>>;

/** k8s' datastore-type for managed etcd; undefined leaves k8s' default (also managed etcd). */
export function datastoreType(config: Config): 'etcd' | undefined {
  return datastoreChoice(config) === 'managed-etcd' ? 'etcd' : undefined;
}

export function bootstrapRecord(config: Config): BootstrapRecord {
  return {
    'bootstrap-datastore': config.string('bootstrap-datastore'),
    'bootstrap-pod-cidr': config.string('bootstrap-pod-cidr'),
    'bootstrap-service-cidr': config.string('bootstrap-service-cidr'),
  };
}

export function parseBootstrapRecord(text: string | undefined): BootstrapRecord | undefined {
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const record: Record<string, string> = {};
    for (const option of IMMUTABLE_OPTIONS) {
      const item = (value as Record<string, unknown>)[option];
      record[option] = typeof item === 'string' ? item : '';
    }
    return record as BootstrapRecord;
  } catch {
    return undefined;
  }
}

/** "<option> is immutable; revert to '<value>'" for each option changed since bootstrap. */
export function immutabilityViolations(config: Config, record: BootstrapRecord): string[] {
  const current = bootstrapRecord(config);
  return IMMUTABLE_OPTIONS.filter((option) => current[option] !== record[option]).map(
    (option) => `${option} is immutable; revert to '${record[option]}'`,
  );
}

/** kube-apiserver-extra-sans, plus the external load balancer's address when there is one. */
export function extraSans(config: Config, loadBalancerAddress?: string): string[] {
  const sans = parseSans('kube-apiserver-extra-sans', config.string('kube-apiserver-extra-sans'));
  return [...new Set([...sans, ...(loadBalancerAddress ? [loadBalancerAddress] : [])])];
}

/**
 * The document for `k8s bootstrap --file -`, keys as in Canonical Kubernetes' bootstrap config;
 * with an external etcd (from the etcd relation) when one is given.
 */
export function bootstrapDocument(config: Config, externalEtcd?: EtcdConnection, loadBalancerAddress?: string): Record<string, unknown> {
  const podCidrs = parseCidrs('bootstrap-pod-cidr', config.string('bootstrap-pod-cidr'));
  const serviceCidrs = parseCidrs('bootstrap-service-cidr', config.string('bootstrap-service-cidr'));
  const datastore = datastoreType(config);
  const sans = extraSans(config, loadBalancerAddress);
  return {
    'cluster-config': featureSettings(config),
    ...(podCidrs.length > 0 ? { 'pod-cidr': podCidrs.join(',') } : {}),
    ...(serviceCidrs.length > 0 ? { 'service-cidr': serviceCidrs.join(',') } : {}),
    ...(externalEtcd ? externalDatastoreDocument(externalEtcd) : datastore ? { 'datastore-type': datastore } : {}),
    ...(sans.length > 0 ? { 'extra-sans': sans } : {}),
    ...nodeDocument(config, 'control-plane'),
    ...(config.boolean('fips') ? { fips: true } : {}),
  };
}

/** The document for `k8s join-cluster --file -` on a control-plane node; undefined when empty. */
export function controlPlaneJoinDocument(config: Config, loadBalancerAddress?: string): Record<string, unknown> | undefined {
  const sans = extraSans(config, loadBalancerAddress);
  const document = { ...(sans.length > 0 ? { 'extra-sans': sans } : {}), ...nodeDocument(config, 'control-plane') };
  return Object.keys(document).length > 0 ? document : undefined;
}

/** Validates every option the control plane uses, so a bad value blocks before anything runs. */
export function validateControlPlaneOptions(config: Config): void {
  bootstrapDocument(config);
  parseCustomRegistries(REGISTRIES_OPTION, config.string(REGISTRIES_OPTION));
  parseNodeLabels('node-labels', config.string('node-labels'));
}
