// Local API: etcd snapshots (take, list, restore).
import { endpoint, noBody } from './endpoint.js';

export interface SnapshotInfo {
  file: string;
  name: string;
  bytes: number;
  createdAt: string;
  scheduled: boolean;
}

export interface SavedSnapshot extends SnapshotInfo {
  revision: number;
  keys: number;
}

export interface RestoreResult {
  file: string;
  previousDataDir?: string;
  revision: number;
  /** Control-plane nodes that must re-join. */
  droppedNodes: string[];
  seconds: number;
}

export const saveSnapshot = endpoint<SavedSnapshot>()({ method: 'POST', path: '/1.0/k8sd/snapshots', request: (z) => z.object({ name: z.string().optional() }) });
export const listSnapshots = endpoint<{ directory: string; snapshots: SnapshotInfo[] }>()({ method: 'GET', path: '/1.0/k8sd/snapshots', request: noBody });
export const restoreSnapshot = endpoint<RestoreResult>()({ method: 'POST', path: '/1.0/k8sd/snapshots/restore', streams: true, request: (z) => z.object({ file: z.string().optional() }) });
