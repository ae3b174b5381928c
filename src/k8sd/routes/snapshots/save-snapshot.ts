// POST /1.0/k8sd/snapshots: takes a sealed etcd snapshot on this control-plane node.
import { local } from '../../../api/index.js';
import { parseRequest } from '../../../api/parse.js';
import { at, type Route } from '../../http.js';
import { saveSnapshot, wrapErrors, type SnapshotNode } from '../../snapshots.js';

export function saveSnapshotRoute(d: SnapshotNode): Route {
  return {
    ...at(local.saveSnapshot),
    handler: async (req) => {
      const { name } = parseRequest(local.saveSnapshot, req.body);
      return wrapErrors(() => saveSnapshot(d, name));
    },
  };
}
