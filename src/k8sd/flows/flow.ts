// A flow is an ordered list of named steps. Each step may roll back; when a step
// fails, the steps already done are rolled back in reverse and the error names the step.

export interface Step<C> {
  name: string;
  /** Human description shown by the CLI. */
  title: string;
  run(ctx: C): Promise<void>;
  rollback?(ctx: C): Promise<void>;
}

export type { StepEvent } from '../../api/progress.js';
import type { StepEvent } from '../../api/progress.js';

export class FlowError extends Error {
  constructor(readonly flow: string, readonly step: string, override readonly cause: Error) {
    super(`${flow} failed at step "${step}": ${cause.message}`);
    this.name = 'FlowError';
  }
}

export async function runFlow<C>(flow: string, steps: Step<C>[], ctx: C, onEvent: (e: StepEvent) => void = () => {}): Promise<void> {
  const done: Step<C>[] = [];
  for (const step of steps) {
    onEvent({ type: 'step', step: step.name, title: step.title });
    try {
      await step.run(ctx);
      done.push(step);
    } catch (err) {
      const cause = err instanceof Error ? err : new Error(String(err));
      // The failing step may have done part of its work: roll it back too.
      for (const s of [step, ...done.reverse()]) {
        if (!s.rollback) continue;
        try {
          await s.rollback(ctx);
          onEvent({ type: 'rollback', step: s.name });
        } catch (rbErr) {
          onEvent({ type: 'rollback', step: s.name, error: (rbErr as Error).message });
        }
      }
      throw new FlowError(flow, step.name, cause);
    }
  }
}
