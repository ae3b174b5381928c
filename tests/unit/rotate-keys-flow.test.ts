// Rotating the secrets-encryption key as named steps, over fake control-plane nodes
// (tests/unit/doubles.ts): which node is asked what, in which order, and what an undo cleans.
import { describe, expect, it } from 'vitest';
import type { StepEvent } from '../../src/k8sd/flows/flow.js';
import { FlowError } from '../../src/k8sd/flows/flow.js';
import { keyRotation, rotateKeys, rotateKeysSteps } from '../../src/k8sd/flows/rotate-keys.js';
import { ApiError, type Request } from '../../src/k8sd/http.js';
import { keyChangeBody } from '../../src/k8sd/secrets-rotation.js';
import { peer } from '../../src/api/index.js';
import { fakeKeyRotation, KeyHolderCall } from './doubles.js';

async function rotate(failing: Record<string, KeyHolderCall[]> = {}) {
  const { deps, calls } = fakeKeyRotation(['cp-2', 'cp-3'], failing);
  const ctx = keyRotation(deps);
  const events: StepEvent[] = [];
  const error = await rotateKeys(ctx, (e) => events.push(e)).then(
    () => undefined,
    (err: unknown) => err,
  );
  const rollbacks = events.filter((e) => e.type === 'rollback');
  return { ctx, calls, error, rollbacks };
}

describe('key rotation as steps', () => {
  it('is lock, collect, plan, stage, activate', () => {
    expect(rotateKeysSteps.map((s) => s.name)).toEqual(['lock', 'collect', 'plan', 'stage', 'activate']);
    expect(rotateKeysSteps.filter((s) => s.rollback).map((s) => s.name)).toEqual(['lock', 'stage']);
  });

  it('stages the new key everywhere before any node writes with it, this node activating first; the lock is released once', async () => {
    const { ctx, calls, error } = await rotate();
    expect(error).toBeUndefined();
    expect(calls).toEqual([
      'lock',
      'cp-1 keys',
      'cp-2 keys',
      'cp-3 keys',
      'plan from cp-1,cp-2,cp-3',
      'cp-1 stage k2',
      'cp-2 stage k2',
      'cp-3 stage k2',
      'cp-1 activate k2',
      'cp-2 activate k2',
      'cp-3 activate k2',
      'unlock lease-1',
    ]);
    expect(ctx.activatedOn).toEqual(['cp-1', 'cp-2', 'cp-3']);
    expect(ctx.lease).toBeUndefined();
  });

  it('a node that does not answer the collect stops the rotation before anything changed', async () => {
    const { calls, error, rollbacks } = await rotate({ 'cp-3': ['keys'] });
    expect(error).toBeInstanceOf(FlowError);
    expect((error as FlowError).step).toBe('collect');
    expect(((error as FlowError).cause as ApiError).status).toBe(503);
    expect((error as Error).message).toContain('"cp-3" (cp-3: connection refused (test double)). Nothing was changed');
    expect(calls.filter((c) => / (stage|activate|discard) /.test(c))).toEqual([]);
    expect(rollbacks.map((e) => e.step)).toEqual(['lock']);
    expect(calls.at(-1)).toBe('unlock lease-1');
    expect(calls.filter((c) => c.startsWith('unlock'))).toHaveLength(1);
  });

  it('a node that fails to take the new key: the staged key is removed everywhere it was sent, then the lock released', async () => {
    const { ctx, calls, error, rollbacks } = await rotate({ 'cp-2': ['stage'] });
    expect((error as FlowError).step).toBe('stage');
    expect((error as Error).message).toContain('control-plane node(s) "cp-2" (cp-2: connection refused (test double)) did not take the new key');
    expect(calls.slice(calls.indexOf('cp-3 stage k2') + 1)).toEqual(['cp-1 discard k2', 'cp-2 discard k2', 'cp-3 discard k2', 'unlock lease-1']);
    // The undo runs in reverse: the failed stage first, then the lock.
    expect(rollbacks).toEqual([
      { type: 'rollback', step: 'stage' },
      { type: 'rollback', step: 'lock' },
    ]);
    expect(ctx.leftStaged).toEqual([]);
    expect(calls.some((c) => c.includes('activate'))).toBe(false);
  });

  it('a node the undo cannot reach is named, and the lock is still released', async () => {
    const { ctx, calls, rollbacks } = await rotate({ 'cp-2': ['stage', 'discard'] });
    expect(ctx.leftStaged).toEqual(['cp-2']);
    expect(rollbacks[0]).toEqual({ type: 'rollback', step: 'stage', error: 'the staged key k2 is left on cp-2' });
    expect(rollbacks[1]).toEqual({ type: 'rollback', step: 'lock' });
    expect(calls.at(-1)).toBe('unlock lease-1');
  });

  it('this node failing to activate undoes the stage everywhere: no node writes with the new key', async () => {
    const { ctx, calls, error, rollbacks } = await rotate({ 'cp-1': ['activate'] });
    expect((error as FlowError).step).toBe('activate');
    expect(calls.filter((c) => c.includes('activate'))).toEqual(['cp-1 activate k2']);
    expect(calls.slice(-4)).toEqual(['cp-1 discard k2', 'cp-2 discard k2', 'cp-3 discard k2', 'unlock lease-1']);
    expect(rollbacks.map((e) => e.step)).toEqual(['stage', 'lock']);
    expect(ctx.activatedOn).toEqual([]);
  });

  it('a peer that misses the activation is behind, not broken: nothing is undone, it is reported', async () => {
    const { ctx, calls, error, rollbacks } = await rotate({ 'cp-3': ['activate'] });
    expect(error).toBeUndefined();
    expect(rollbacks).toEqual([]);
    expect(calls.some((c) => c.includes('discard'))).toBe(false);
    expect(ctx.activatedOn).toEqual(['cp-1', 'cp-2']);
    expect(ctx.notActivated.map((n) => n.holder.name)).toEqual(['cp-3']);
    expect(calls.at(-1)).toBe('unlock lease-1');
  });
});

describe('the key-change routes parse with their own endpoint', () => {
  const malformed = { body: { keyId: 7 } } as unknown as Request;

  it('a malformed activation names POST …/keys/activate, a malformed stage …/keys/stage', () => {
    expect(() => keyChangeBody(peer.encryptionKeysActivate, malformed)).toThrow(/^malformed request to POST \S+\/keys\/activate: field "/);
    expect(() => keyChangeBody(peer.encryptionKeysStage, malformed)).toThrow(/^malformed request to POST \S+\/keys\/stage: field "/);
  });
});
