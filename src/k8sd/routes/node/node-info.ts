// GET /1.0/k8sd/node: who this node is, clustered or not.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import type { NodeContext } from '../../node-context.js';
import { nodeInfo } from '../../status.js';

export function nodeInfoRoute(d: Pick<NodeContext, 'node' | 'host'>): Route {
  return { ...at(local.nodeInfo), handler: async () => nodeInfo(d) };
}
