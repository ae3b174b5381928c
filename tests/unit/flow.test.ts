import { describe, expect, it } from 'vitest';
import { FlowError, runFlow, Step } from '../../src/k8sd/flows/flow.js';

describe('flows', () => {
  it('rolls back the failing step and every completed step in reverse, and names the step', async () => {
    const log: string[] = [];
    const step = (name: string, fail = false): Step<null> => ({
      name,
      title: name,
      run: async () => {
        log.push(`run ${name}`);
        if (fail) throw new Error('boom');
      },
      rollback: async () => {
        log.push(`undo ${name}`);
      },
    });
    const err = await runFlow('bootstrap', [step('a'), step('b'), step('c', true), step('d')], null).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlowError);
    expect((err as FlowError).step).toBe('c');
    expect((err as FlowError).message).toBe('bootstrap failed at step "c": boom');
    expect(log).toEqual(['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a']);
  });
});
