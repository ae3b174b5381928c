// etcd snapshots as a k8sd module: the routes of `k8s snapshot save | list | restore`
// (routes/snapshots/), the schedule with retention, and the snapshot key's travel to joining
// control-plane nodes. What they do is snapshots.ts's.
import type { SnapshotNode } from './snapshots.js';
import { keyStore, pruneScheduled, removeStaleStaging, saveSnapshot, snapshotSettingsOf } from './snapshots.js';
import { DEFAULT_SNAPSHOT_SETTINGS, nextRun, parseSchedule, SnapshotSettings } from '../snapshots/schedule.js';
import { registerJoinPayload, registerLeaveHook } from './membership/extensions.js';
import { saveSnapshotRoute } from './routes/snapshots/save-snapshot.js';
import { listSnapshotsRoute } from './routes/snapshots/list-snapshots.js';
import { restoreSnapshotRoute } from './routes/snapshots/restore-snapshot.js';

/** Runs scheduled snapshots on a control-plane node, re-reading the schedule each time. */
class SnapshotScheduler {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private current = '';

  constructor(private readonly d: SnapshotNode) {}

  start(): void {
    this.stopped = false;
    void this.plan();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Re-plans the timer (after `k8s set etcd-snapshot.schedule=…`). */
  trigger(): void {
    if (this.timer) clearTimeout(this.timer);
    this.current = '';
    void this.plan();
  }

  private async plan(): Promise<void> {
    if (this.stopped) return;
    let settings = DEFAULT_SNAPSHOT_SETTINGS;
    try {
      const config = await this.d.state?.getConfig();
      if (config) settings = snapshotSettingsOf(config);
    } catch {
      // datastore briefly unavailable: check again in a minute
    }
    this.current = settings.schedule;
    const next = nextRun(parseSchedule(settings.schedule), new Date());
    // Long waits are re-planned hourly so a changed schedule or a clock jump is picked up.
    const wait = next ? Math.min(next.getTime() - Date.now(), 3_600_000) : 60_000;
    const due = next !== undefined && next.getTime() - Date.now() <= 3_600_000;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.fire(due, settings), Math.max(wait, 0));
    this.timer.unref();
  }

  private async fire(due: boolean, settings: SnapshotSettings): Promise<void> {
    if (this.stopped) return;
    if (due) {
      try {
        // Re-read: the schedule may have been turned off meanwhile.
        const config = await this.d.state?.getConfig();
        if (config && snapshotSettingsOf(config).schedule === settings.schedule) {
          await saveSnapshot(this.d, undefined, true);
          pruneScheduled(this.d, snapshotSettingsOf(config).retention);
        }
      } catch (err) {
        this.d.log.error('scheduled etcd snapshot failed', { error: (err as Error).message });
      }
    }
    await this.plan();
  }
}

let scheduler: SnapshotScheduler | undefined;

/** Re-plans the schedule after a settings change on this node. */
export function snapshotSettingsChanged(): void {
  scheduler?.trigger();
}

export function registerSnapshots(d: SnapshotNode): void {
  d.extraLocalRoutes.push(saveSnapshotRoute(d), listSnapshotsRoute(d), restoreSnapshotRoute(d));
  d.onClustered.push(async (node) => {
    if (node.role !== 'control-plane') return;
    removeStaleStaging(d);
    // The bootstrap node (or a cluster's only control-plane node) creates the key; joiners receive it.
    if (!keyStore(d).exists() && d.state) {
      const others = (await d.state.listNodes()).filter((n) => n.role === 'control-plane' && n.name !== node.name);
      if (others.length === 0) {
        await keyStore(d).ensure();
        d.log.info('created the etcd snapshot key', { file: d.layout.snapshotKeyFile });
      } else {
        d.log.warn('this control-plane node has no etcd snapshot key; copy it from another control-plane node to take or restore snapshots here', { file: d.layout.snapshotKeyFile });
      }
    }
    scheduler ??= new SnapshotScheduler(d);
    scheduler.start();
  });
  d.onStop.push(async () => scheduler?.stop());
  registerJoinPayload({
    key: 'etcd-snapshot-key',
    export: async () => (await keyStore(d).load())?.document,
    import: async (data) => {
      if (data !== undefined && data !== null) await keyStore(d).install(data);
    },
    discard: async () => keyStore(d).remove(),
  });
  // A node that left can no longer open the cluster's snapshots.
  registerLeaveHook('etcd-snapshot-key', async () => keyStore(d).remove());
}
