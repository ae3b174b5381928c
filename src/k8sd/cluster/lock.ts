// The cluster-wide lock that serialises control-plane joins, CA rotation and key rotation: one wait
// loop for all three. Each caller says when to give up (refuse) and with which error.
import { ApiError } from '../http.js';

/** Where the lock lives (the membership store). */
export interface ClusterLockStore {
  lockJoin(holder: string, ttlSeconds: number): Promise<string | undefined>;
  joinLockHolder(): Promise<string | undefined>;
}

export interface ClusterLockWait {
  ttlSeconds: number;
  /** How long to wait for a lock held by another operation. */
  waitMs: number;
  /** The pause between attempts: this, plus up to as much again at random. */
  pauseMs: number;
  /**
   * Called while someone else holds the lock, with its holder; returns the error to give up with
   * (always, once `timedOut`), or undefined to keep waiting.
   */
  refuse(holder: string | undefined, timedOut: boolean): ApiError | undefined;
}

/** Takes the lock for `holder`, waiting while another operation holds it; returns the lease. */
export async function takeClusterLock(store: ClusterLockStore, holder: string, wait: ClusterLockWait): Promise<string> {
  const deadline = Date.now() + wait.waitMs;
  for (;;) {
    const lease = await store.lockJoin(holder, wait.ttlSeconds);
    if (lease) return lease;
    const timedOut = Date.now() > deadline;
    const err = wait.refuse(await store.joinLockHolder(), timedOut);
    if (err) throw err;
    if (timedOut) throw new ApiError(409, 'the cluster lock is held by another operation; retry when it has finished');
    await new Promise((r) => setTimeout(r, wait.pauseMs + Math.floor(Math.random() * wait.pauseMs)));
  }
}
