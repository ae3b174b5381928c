// POST /1.0/k8sd/rotate-ca: rotates the cluster's CAs from this control-plane node, streaming the steps.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { CertsNode } from '../../certs/node.js';
import { streamCaRotation } from '../../certs/rotate-ca.js';

/** `exclusive`: one CA rotation step at a time on this node (certs/index.ts). */
export function rotateCaRoute(d: CertsNode, exclusive: <T>(f: () => Promise<T>) => Promise<T>): Route {
  return {
    ...at(local.rotateCa),
    handler: async (_req, res) => {
      d.requireControlPlane();
      return exclusive(async () => {
        return streamCaRotation(d, res);
      });
    },
  };
}
