// Registry of k8sd modules: each adds its API routes, controllers and hooks to the node it is given.
// The daemon (daemon.ts, the composition root) passes itself; this file names only what the
// modules use of it, so it does not import the daemon.
import type { CertsNode } from './certs/node.js';
import type { MembershipNode } from './membership/context.js';
import type { SnapshotNode } from './snapshots.js';
import type { ModuleRegistry } from './node-context.js';
import { registerCertificates } from './certs/index.js';
import { registerMembership } from './membership/index.js';
import { renewWorkerCertificates } from './membership/worker-certificates.js';
import { registerFeatures } from './features/index.js';
import { registerSnapshots } from './snapshots-module.js';
import { registerMetrics } from './metrics.js';

/** Everything the modules take from the node they run on, together. */
export type ModuleNode = CertsNode & MembershipNode & SnapshotNode & ModuleRegistry;

export function registerModules(d: ModuleNode): void {
  // A worker's certificates are renewed through membership (the control plane signs them).
  registerCertificates(d, (names) => renewWorkerCertificates(d, names));
  registerMembership(d);
  registerFeatures(d);
  registerSnapshots(d);
  registerMetrics(d);
}
