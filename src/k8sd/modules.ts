// Registry of k8sd modules: each adds its API routes, controllers and hooks to the daemon.
import type { K8sd } from './daemon.js';

export function registerModules(_d: K8sd): void {
  // Modules register here, e.g. registerMembership(d), registerCertificates(d).
}
