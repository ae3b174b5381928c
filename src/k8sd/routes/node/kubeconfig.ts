// GET /1.0/k8sd/kubeconfig: the admin kubeconfig of this control-plane node; query `server` (an https URL)
// replaces its server.
import { readFileSync } from 'node:fs';
import { local } from '../../../api/index.js';
import { parseServerUrl, ServerUrlError } from '../../../config/net.js';
import { kubeconfigWithServer } from '../../../pki/signer.js';
import { at, ApiError, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';

export function kubeconfigRoute(d: Pick<NodeContext, 'requireControlPlane' | 'layout'>): Route {
  return {
    ...at(local.kubeconfig),
    handler: async (req) => {
      d.requireControlPlane();
      let text = readFileSync(d.layout.kubeconfig('admin.conf'), 'utf8');
      const server = req.query.get('server');
      if (server !== null) {
        let url: string;
        try {
          url = parseServerUrl(server);
        } catch (err) {
          if (err instanceof ServerUrlError) throw new ApiError(400, `${err.message}; nothing was changed`);
          throw err;
        }
        text = kubeconfigWithServer(text, url);
      }
      return { kubeconfig: text };
    },
  };
}
