// What every feature's objects are made of: the context they are rendered in, the label that
// names their feature, and the settings all add-ons share. manifests.ts and ingress-gateway.ts
// build on it (and manifests.ts re-exports it for the controller).
import type { KubernetesObject } from '@kubernetes/client-node';
import type { FeatureSettings, ImplementedFeature } from '../../config/features.js';
import type { FEATURE_IMAGES } from '../../services/images.js';

export const FEATURE_LABEL = 'k8sd.io/feature';

/** metrics-server's TLS material (k8sd issues the serving pair; see metrics-server-tls.ts). */
export interface MetricsServerPki {
  /** Serving certificate and key of metrics-server.kube-system.svc. */
  cert: string;
  key: string;
  /** The CA that signed it: the APIService's caBundle. */
  ca: string;
  /** The CA bundle metrics-server verifies kubelets' serving certificates with. */
  kubeletCa: string;
}

export interface ManifestContext {
  settings: FeatureSettings;
  /** Versions of the image recipes (their image tags). */
  versions: Record<keyof typeof FEATURE_IMAGES, string>;
  /** FIPS mode: the Go binaries in the images run with fips140=on. */
  fips: boolean;
  /** K8S_ROOT of the node rendering the objects: host paths (local-storage.local-path) are re-rooted under it. */
  root: string;
  /** Needed for metrics-server only. */
  metricsServer?: MetricsServerPki;
  /** gateway only: the pinned Gateway API CRDs, labelled (ingress-gateway.ts). */
  gatewayApi?: FeatureObject[];
  /** ingress only: a hash of the default TLS Secret's data (a new certificate rolls the data plane); '' when absent. */
  ingressTlsHash?: string;
}

export type FeatureObject = KubernetesObject & Record<string, unknown>;

export const featureLabels = (feature: ImplementedFeature, app: string): Record<string, string> => ({ [FEATURE_LABEL]: feature, 'k8s-app': app });

export const goDebug = (fips: boolean): Array<{ name: string; value: string }> => [{ name: 'GODEBUG', value: fips ? 'fips140=on' : 'fips140=off' }];

/** Tolerations of cluster add-ons: they run on control-plane nodes too, tainted or not. */
export const addonTolerations = [
  { key: 'CriticalAddonsOnly', operator: 'Exists' },
  { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
];

/** Restricted-profile container settings (Pod Security "restricted"), for containers that need no privilege. */
export const restrictedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Short stable hash (FNV-1a) for pod-template annotations. */
export function templateHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
