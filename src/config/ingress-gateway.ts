// The ingress and gateway features' settings (Canonical Kubernetes' `ingress.*` and `gateway.*`
// keys): defaults, validation of `k8s set` values, and the rule that both need the network feature.
// Kept apart from features.ts so that each feature's rules read in one place.
import { FeatureConfigError } from './features.js';

export interface IngressSettings {
  enabled: boolean;
  /** Name of a kubernetes.io/tls Secret in kube-system: the certificate HTTPS is served with when no Ingress names one. Empty: Traefik's self-signed one. */
  'default-tls-secret': string;
  /** Expect a PROXY protocol (v1/v2) header from the load balancer in front. */
  'enable-proxy-protocol': boolean;
}

export interface GatewaySettings {
  enabled: boolean;
}

export const INGRESS_KEYS = ['enabled', 'default-tls-secret', 'enable-proxy-protocol'] as const;
export const GATEWAY_KEYS = ['enabled'] as const;

export function defaultIngressSettings(): IngressSettings {
  return { enabled: false, 'default-tls-secret': '', 'enable-proxy-protocol': false };
}

export function defaultGatewaySettings(enabled = false): GatewaySettings {
  return { enabled };
}

/** A Secret's name: a DNS subdomain (RFC 1123), at most 253 characters. */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkSecretName(key: string, value: unknown): string {
  const v = String(value ?? '');
  if (v === '') return v;
  if (v.length > 253 || !SECRET_NAME.test(v)) {
    throw new FeatureConfigError(key, `"${v}" is not a Secret name (lower-case letters, digits, "-" and ".", at most 253 characters); give the name of a kubernetes.io/tls Secret in kube-system, or an empty value for none`);
  }
  return v;
}

/**
 * Ingress and gateway route traffic to pods over the cluster network: refused while it is off, in
 * whichever order the keys come (enabling one with network off, or turning network off under them).
 */
export function checkNeedsNetwork(next: { network: { enabled: boolean }; ingress: IngressSettings; gateway: GatewaySettings }): void {
  if (next.network.enabled) return;
  for (const feature of ['ingress', 'gateway'] as const) {
    if (next[feature].enabled) {
      throw new FeatureConfigError(`${feature}.enabled`, `${feature} needs the network feature, which is disabled; enable network first (k8s enable network), or disable ${feature} before disabling network`);
    }
  }
}
