// Registry of k8sd modules: each adds its API routes, controllers and hooks to the daemon.
import type { K8sd } from './daemon.js';
import { registerCertificates } from './certs/index.js';
import { registerMembership } from './membership/index.js';
import { registerFeatures } from './features/index.js';
import { registerSnapshots } from './snapshots.js';
import { registerMetrics } from './metrics.js';

export function registerModules(d: K8sd): void {
  registerCertificates(d);
  registerMembership(d);
  registerFeatures(d);
  registerSnapshots(d);
  registerMetrics(d);
}
