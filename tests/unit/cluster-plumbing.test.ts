// The cluster RPC plumbing shared by membership, certs and secrets: the lock wait and progress streaming.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { takeClusterLock } from '../../src/k8sd/cluster/lock.js';
import { streamProgress } from '../../src/k8sd/cluster/progress.js';
import { ApiError } from '../../src/k8sd/http.js';
import { createLogger } from '../../src/log.js';

const log = createLogger('test', path.join(os.tmpdir(), 'k8s-cluster-plumbing-test.log'));

/** A lock that is free after `busyFor` attempts, held by `holder` until then. */
function lockStore(busyFor: number, holder = 'node-9') {
  let attempts = 0;
  return {
    attempts: () => attempts,
    lockJoin: async (): Promise<string | undefined> => (++attempts > busyFor ? 'lease-1' : undefined),
    joinLockHolder: async (): Promise<string | undefined> => holder,
  };
}

describe('takeClusterLock', () => {
  const wait = { ttlSeconds: 30, waitMs: 10_000, pauseMs: 1 };

  it('waits while another operation holds the lock, then returns the lease', async () => {
    const store = lockStore(3);
    expect(await takeClusterLock(store, 'me', { ...wait, refuse: () => undefined })).toBe('lease-1');
    expect(store.attempts()).toBe(4);
  });

  it('gives up at once when the caller refuses the holder (a CA rotation refusing another)', async () => {
    const store = lockStore(100, 'ca-rotation:cp-1');
    const refuse = (h: string | undefined): ApiError | undefined => (h?.startsWith('ca-rotation:') ? new ApiError(409, `rotation on ${h}`) : undefined);
    await expect(takeClusterLock(store, 'me', { ...wait, refuse })).rejects.toThrow('rotation on ca-rotation:cp-1');
    expect(store.attempts()).toBe(1);
  });

  it('gives up with the caller\'s error once the wait is over, naming the holder', async () => {
    const store = lockStore(1_000_000);
    const refuse = (h: string | undefined, timedOut: boolean): ApiError | undefined => (timedOut ? new ApiError(409, `held by ${h}`) : undefined);
    const err = await takeClusterLock(store, 'me', { ...wait, waitMs: 30, refuse }).catch((e: ApiError) => e);
    expect(err).toMatchObject({ status: 409, message: 'held by node-9' });
  });
});

class FakeResponse extends EventEmitter {
  status = 0;
  headers: Record<string, string> = {};
  body = '';
  ended = false;
  writeHead(status: number, headers: Record<string, string>): this {
    this.status = status;
    this.headers = headers;
    return this;
  }
  write(chunk: string): boolean {
    this.body += chunk;
    return true;
  }
  end(): this {
    this.ended = true;
    return this;
  }
}

describe('streamProgress', () => {
  const lines = (r: FakeResponse): unknown[] => r.body.trim().split('\n').map((l) => JSON.parse(l) as unknown);

  it('streams each event as a JSON line and ends with done and the result', async () => {
    const res = new FakeResponse();
    await streamProgress<{ type: 'step'; step: string }>(res as unknown as ServerResponse, log, 'test', async (emit) => {
      emit({ type: 'step', step: 'one' });
      return { seconds: 1 };
    });
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    expect(lines(res)).toEqual([{ type: 'step', step: 'one' }, { type: 'done', metadata: { seconds: 1 } }]);
    expect(res.ended).toBe(true);
  });

  it('turns a failure into an error line, never a thrown error', async () => {
    const res = new FakeResponse();
    await streamProgress(res as unknown as ServerResponse, log, 'test', async () => Promise.reject(new Error('bootstrap failed at step "pki": boom')));
    expect(lines(res)).toEqual([{ type: 'error', error: 'bootstrap failed at step "pki": boom' }]);
    expect(res.ended).toBe(true);
  });
});
