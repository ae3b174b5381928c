// What the certificates module uses of the node: the common NodeContext, plus the three things
// of the daemon that refresh-certs and CA rotation need. The daemon is one; a test gives less.
// Workers' renewal is membership's (the control plane signs their certificates): the module
// receives it as a function (RenewWorkerCertificates), wired in modules.ts.
import type { ServiceStatus } from '../../services/manager.js';
import type { ServiceId } from '../../services/specs.js';
import type { WorkerCertificate } from '../membership/worker-certificates.js';
import type { NodeContext } from '../node-context.js';
import type { TrustedPeers } from '../trusted-peers.js';

export interface CertsNode extends NodeContext {
  /** The node's installed services: a refresh restarts only those among the ones its certificates feed. */
  serviceStates(): Promise<ServiceStatus[]>;
  /** Re-opens the datastore client with the files on disk (after k8sd's etcd client certificate was renewed). */
  reconnectDatastore(): Promise<void>;
  /** The cluster API callers that are members: CA rotation's cluster routes accept control-plane nodes only. */
  readonly trustedPeers: TrustedPeers;
}

/** Renews a worker's certificates through the control plane; returns what it renewed and restarted. */
export type RenewWorkerCertificates = (names: WorkerCertificate[]) => Promise<{ renewed: WorkerCertificate[]; restarted: ServiceId[] }>;
