import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/k8sd/http.js';
import { NodeBusyError, NodeOperationLock } from '../../src/k8sd/node-lock.js';

describe('the node-operation lock', () => {
  it('refuses a join while a bootstrap runs, with 409 naming both', () => {
    const lock = new NodeOperationLock();
    const release = lock.acquire('bootstrap');
    let refused: unknown;
    try {
      lock.acquire('join');
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(NodeBusyError);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as NodeBusyError).status).toBe(409);
    expect((refused as NodeBusyError).message).toMatch(/a bootstrap is in progress on this node; run the join again/);
    release();
    expect(lock.held).toBeUndefined();
    lock.acquire('join')();
  });

  it('serialises every kind of operation against every other', async () => {
    const lock = new NodeOperationLock();
    const ops = ['bootstrap', 'join', 'removal', 'snapshot restore', 'CA rotation', 'key rotation'] as const;
    for (const running of ops) {
      const release = lock.acquire(running);
      for (const other of ops) expect(() => lock.check(other)).toThrow(NodeBusyError);
      await expect(lock.run('CA rotation', async () => 1)).rejects.toThrow(`a ${running} is in progress`);
      release();
    }
  });

  it('run() releases the lock when the operation fails, and returns its result when it succeeds', async () => {
    const lock = new NodeOperationLock();
    await expect(lock.run('removal', async () => Promise.reject(new Error('etcd did not answer')))).rejects.toThrow('etcd did not answer');
    expect(lock.held).toBeUndefined();
    expect(await lock.run('key rotation', async () => 'k2')).toBe('k2');
  });

  it('two operations started together: exactly one runs, the other is refused before it starts', async () => {
    const lock = new NodeOperationLock();
    const started: string[] = [];
    const op = (name: 'join' | 'CA rotation') =>
      lock.run(name, async () => {
        started.push(name);
        await new Promise((r) => setTimeout(r, 10));
      });
    const results = await Promise.allSettled([op('join'), op('CA rotation')]);
    expect(started).toEqual(['join']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
  });

  it('a release function releases once: a stale one cannot free a later holder', () => {
    const lock = new NodeOperationLock();
    const first = lock.acquire('bootstrap');
    first();
    lock.acquire('join');
    first();
    expect(lock.held).toBe('join');
  });
});
