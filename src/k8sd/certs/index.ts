// Certificates module: certs-status, refresh-certs (local and external), automatic renewal
// and online CA rotation (local API: the orchestrating node; cluster API: every node's part), registered into k8sd.
import type { ModuleRegistry } from '../node-context.js';
import { RenewalController } from './renewal.js';
import type { CertsNode, RenewWorkerCertificates } from './node.js';
import { certsStatusRoute } from '../routes/certs/certs-status.js';
import { refreshCertsRoute } from '../routes/certs/refresh-certs.js';
import { installExternalCertsRoute } from '../routes/certs/install-external-certs.js';
import { renewCertsNowRoute } from '../routes/certs/renew-certs-now.js';
import { rotateCaRoute } from '../routes/certs/rotate-ca.js';
import { caRotationCheckRoute } from '../routes/peer/ca-rotation-check.js';
import { caRotationApplyRoute } from '../routes/peer/ca-rotation-apply.js';

/** `renewWorker`: membership's renewal of a worker's certificates (refresh-certs, renewal and CA rotation on a worker). */
export function registerCertificates(d: CertsNode & ModuleRegistry, renewWorker: RenewWorkerCertificates): void {
  const renewal = new RenewalController(d, renewWorker);
  // One CA rotation step at a time on this node (orchestrating one, or applying a phase for another
  // node), and none while the node bootstraps, joins, restores or rotates its encryption keys.
  const exclusive = <T>(f: () => Promise<T>): Promise<T> => d.lock.run('CA rotation', f);
  d.extraLocalRoutes.push(certsStatusRoute(d), refreshCertsRoute(d, renewWorker), installExternalCertsRoute(d), renewCertsNowRoute(renewal), rotateCaRoute(d, exclusive));
  d.extraClusterRoutes.push(caRotationCheckRoute(d), caRotationApplyRoute(d, renewWorker, exclusive));
  d.onClustered.push(async (node) => {
    const config = node.role === 'control-plane' ? await d.state?.getConfig() : undefined;
    renewal.start(Number(process.env.K8S_CERT_CHECK_INTERVAL_MS) || config?.certificates.checkIntervalMs || node.certificatePolicy?.checkIntervalMs || 3_600_000);
  });
  d.onStop.push(async () => renewal.stop());
}
