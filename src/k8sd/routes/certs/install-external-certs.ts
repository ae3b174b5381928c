// POST /1.0/k8sd/refresh-certs/update: installs externally managed certificates (YAML of
// <name>-crt/<name>-key pairs).
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';
import type { CertsNode } from '../../certs/node.js';
import { installExternal } from '../../certs/refresh.js';

export function installExternalCertsRoute(d: CertsNode): Route {
  return { ...at(local.installExternalCerts), handler: async (req) => installExternal(d, parseRequest(local.installExternalCerts, req.body).certificates ?? '') };
}
