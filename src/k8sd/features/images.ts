// The images a node needs, as `k8s list-images` prints them: the sandbox (pause) image and every
// image a feature runs, each tagged with its recipe's pinned version. All are side-loaded.
import type { Layout } from '../../layout.js';
import { PAUSE_IMAGE } from '../../services/worker-specs.js';
import { FEATURE_IMAGES, imageRef } from './manifests.js';

export function nodeImages(l: Layout): string[] {
  return [PAUSE_IMAGE, ...Object.entries(FEATURE_IMAGES).map(([name, [component]]) => imageRef(name as keyof typeof FEATURE_IMAGES, l.componentVersion(component)))];
}
