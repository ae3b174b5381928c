// GET /1.0/k8sd/snapshots: the snapshots in this control-plane node's snapshot directory.
import { local } from '../../../api/index.js';
import { at, type Route } from '../../http.js';
import { listSnapshots, type SnapshotNode } from '../../snapshots.js';

export function listSnapshotsRoute(d: SnapshotNode): Route {
  return {
    ...at(local.listSnapshots),
    handler: async () => {
      d.requireControlPlane();
      return { directory: d.layout.snapshotsDir, snapshots: listSnapshots(d) };
    },
  };
}
