// Registry of k8sd modules: each adds its API routes, controllers and hooks to the daemon.
import type { K8sd } from './daemon.js';
import { registerCertificates } from './certs/index.js';
import { registerMembership, renewWorkerCertificates } from './membership/index.js';
import { registerFeatures } from './features/index.js';
import { registerSnapshots } from './snapshots.js';
import { registerMetrics } from './metrics.js';

export function registerModules(d: K8sd): void {
  // A worker's certificates are renewed through membership (the control plane signs them).
  registerCertificates(d, (names) => renewWorkerCertificates(d, names));
  registerMembership(d);
  registerFeatures(d);
  registerSnapshots(d);
  registerMetrics(d);
}
