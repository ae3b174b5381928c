// The images a node side-loads (no registry is needed): what the features run, and where they are named.
import type { FeatureName } from '../config/features.js';
import type { Layout } from '../layout.js';
import { PAUSE_IMAGE } from './worker-specs.js';

export const IMAGE_REGISTRY = 'k8s-ts.local';

/** Images the features run: name → [component recipe, OCI archive in its build]. */
export const FEATURE_IMAGES = {
  coredns: ['coredns', 'coredns.tar'],
  'local-path-provisioner': ['local-path-provisioner', 'local-path-provisioner.tar'],
  'local-path-helper': ['local-path-provisioner', 'local-path-helper.tar'],
  'metrics-server': ['metrics-server', 'metrics-server.tar'],
  traefik: ['traefik', 'traefik.tar'],
} as const;

/** The features whose pods run each image. */
export const IMAGE_FEATURES: Record<keyof typeof FEATURE_IMAGES, readonly FeatureName[]> = {
  coredns: ['dns'],
  'local-path-provisioner': ['local-storage'],
  'local-path-helper': ['local-storage'],
  'metrics-server': ['metrics-server'],
  traefik: ['ingress', 'gateway'],
};

/** The OCI archives (file names) of the images that the enabled features run. */
export function archivesOfFeatures(enabled: (feature: FeatureName) => boolean): Set<string> {
  return new Set(
    (Object.keys(FEATURE_IMAGES) as (keyof typeof FEATURE_IMAGES)[]).filter((image) => IMAGE_FEATURES[image].some(enabled)).map((image) => FEATURE_IMAGES[image][1]),
  );
}

export function imageRef(name: keyof typeof FEATURE_IMAGES, version: string): string {
  return `${IMAGE_REGISTRY}/${name}:${version}`;
}

/** The images a node needs, as `k8s list-images` prints them: the sandbox (pause) image and every
 * image a feature runs, each tagged with its recipe's pinned version. All are side-loaded. */
export function nodeImages(l: Layout): string[] {
  return [PAUSE_IMAGE, ...Object.entries(FEATURE_IMAGES).map(([name, [component]]) => imageRef(name as keyof typeof FEATURE_IMAGES, l.componentVersion(component)))];
}
