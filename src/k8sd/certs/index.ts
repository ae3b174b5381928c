// Certificates module: certs-status, refresh-certs (local and external), automatic renewal
// and online CA rotation (local API: the orchestrating node; cluster API: every node's part), registered into k8sd.
import type { ModuleRegistry } from '../node-context.js';
import { at, ApiError } from '../http.js';
import { local } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { inventory } from './inventory.js';
import { installExternal, refreshControlPlane } from './refresh.js';
import { RenewalController, refreshWorker } from './renewal.js';
import { cnOf, rotationClusterRoutes, rotationContext } from './rotate-ca.js';
import { rotateCas, RotationEvent } from '../flows/rotate-ca.js';
import type { CertsNode, RenewWorkerCertificates } from './node.js';
import { streamProgress } from '../cluster/progress.js';

/** `renewWorker`: membership's renewal of a worker's certificates (refresh-certs, renewal and CA rotation on a worker). */
export function registerCertificates(d: CertsNode & ModuleRegistry, renewWorker: RenewWorkerCertificates): void {
  const renewal = new RenewalController(d, renewWorker);
  // One CA rotation step at a time on this node (orchestrating one, or applying a phase for another
  // node), and none while the node bootstraps, joins, restores or rotates its encryption keys.
  const exclusive = <T>(f: () => Promise<T>): Promise<T> => d.lock.run('CA rotation', f);
  d.extraLocalRoutes.push(
    {
      ...at(local.certsStatus),
      handler: async () => {
        const node = d.node();
        if (!node) throw new ApiError(409, 'this node is not part of a cluster');
        return { node: node.name, role: node.role, certificates: inventory(d.layout, d.crypto, node.role) };
      },
    },
    {
      ...at(local.refreshCerts),
      handler: async (req) => {
        const b = parseRequest(local.refreshCerts, req.body);
        if (b.expirationSeconds !== undefined && !(b.expirationSeconds >= 60)) throw new ApiError(400, 'expires-in must be at least 1m');
        if (d.node()?.role === 'worker') return refreshWorker(d, renewWorker, b.certificates);
        return refreshControlPlane(d, {
          ...(b.certificates?.length ? { certificates: b.certificates } : {}),
          ...(b.expirationSeconds ? { lifetimeMs: b.expirationSeconds * 1000 } : {}),
          ...(b.extraSANs?.length ? { extraSans: b.extraSANs } : {}),
        });
      },
    },
    {
      ...at(local.installExternalCerts),
      handler: async (req) => installExternal(d, parseRequest(local.installExternalCerts, req.body).certificates ?? ''),
    },
    {
      ...at(local.renewCertsNow),
      handler: async () => ({ renewed: await renewal.check() }),
    },
    {
      ...at(local.rotateCa),
      handler: async (_req, res) => {
        d.requireControlPlane();
        return exclusive(async () => {
          return streamProgress<RotationEvent>(res, d.log, 'CA rotation', async (emit) => {
            const ctx = await rotationContext(d, (e) => {
              d.log.info(`rotate-ca: ${e.type === 'step' ? e.title : e.type === 'node' ? `${e.step} on ${e.node}: ${e.detail}` : e.message}`);
              emit(e);
            });
            return rotateCas(ctx, (pem) => cnOf(d, pem));
          });
        });
      },
    },
  );
  d.extraClusterRoutes.push(...rotationClusterRoutes(d, renewWorker, exclusive));
  d.onClustered.push(async (node) => {
    const config = node.role === 'control-plane' ? await d.state?.getConfig() : undefined;
    renewal.start(Number(process.env.K8S_CERT_CHECK_INTERVAL_MS) || config?.certificates.checkIntervalMs || node.certificatePolicy?.checkIntervalMs || 3_600_000);
  });
  d.onStop.push(async () => renewal.stop());
}
