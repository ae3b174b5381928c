// The images a node side-loads (no registry is needed): what the features run, and where they are named.
export const IMAGE_REGISTRY = 'k8s-ts.local';

/** Images the features run: name → [component recipe, OCI archive in its build]. */
export const FEATURE_IMAGES = {
  coredns: ['coredns', 'coredns.tar'],
  'local-path-provisioner': ['local-path-provisioner', 'local-path-provisioner.tar'],
  'local-path-helper': ['local-path-provisioner', 'local-path-helper.tar'],
  'metrics-server': ['metrics-server', 'metrics-server.tar'],
} as const;

export function imageRef(name: keyof typeof FEATURE_IMAGES, version: string): string {
  return `${IMAGE_REGISTRY}/${name}:${version}`;
}
