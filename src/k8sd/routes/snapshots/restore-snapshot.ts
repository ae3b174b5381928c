// POST /1.0/k8sd/snapshots/restore: restores a snapshot on this node, streaming the steps.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { handleRestore, type SnapshotNode } from '../../snapshots.js';

export function restoreSnapshotRoute(d: SnapshotNode): Route {
  return { ...at(local.restoreSnapshot), handler: (req, res) => handleRestore(d, req, res) };
}
