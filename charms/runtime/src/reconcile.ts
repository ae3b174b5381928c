// One idempotent reconcile per dispatch, with Juju's status rule:
// the first Blocked wins, then the first Waiting, else Active.
// Maintenance is shown at once; Blocked/Waiting are collected and settled at the end.
import type { Model } from './model.js';

export type CollectedStatus = 'blocked' | 'waiting';

export interface StatusEntry {
  readonly status: CollectedStatus | 'maintenance' | 'active';
  readonly message: string;
}

/** Thrown by a step to end the reconcile here; the status it carries is collected. */
export class ReconcileStop extends Error {
  constructor(
    readonly status: CollectedStatus | 'maintenance',
    message: string,
  ) {
    super(message);
    this.name = 'ReconcileStop';
  }
}

export interface StepFailure {
  readonly status: CollectedStatus;
  readonly message: string;
}

export class Reconciliation {
  private readonly collected: StatusEntry[] = [];
  private finalMaintenance: StatusEntry | undefined;

  constructor(readonly model: Model) {}

  /** Records a Blocked status and carries on. */
  blocked(message: string): void {
    this.collected.push({ status: 'blocked', message });
  }

  /** Records a Waiting status and carries on. */
  waiting(message: string): void {
    this.collected.push({ status: 'waiting', message });
  }

  /** Ends the reconcile as Blocked. */
  block(message: string): never {
    throw new ReconcileStop('blocked', message);
  }

  /** Ends the reconcile as Waiting. */
  wait(message: string): never {
    throw new ReconcileStop('waiting', message);
  }

  /** Ends the reconcile with a final Maintenance status (e.g. a unit that has left the cluster). */
  finish(message: string): never {
    throw new ReconcileStop('maintenance', message);
  }

  /** Shows a Maintenance status now; Juju applies status-set immediately. */
  async maintenance(message: string): Promise<void> {
    await this.model.setUnitStatus('maintenance', message);
  }

  /**
   * Runs a named step. If it throws, the error is logged, the step's status is collected
   * and the reconcile ends without failing the hook (Juju will re-run it on the next event).
   */
  async step<T>(name: string, onError: StepFailure, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof ReconcileStop) throw error;
      const detail = error instanceof Error ? error.message : String(error);
      await this.model.log('ERROR', `reconcile step '${name}' failed: ${detail}`);
      throw new ReconcileStop(onError.status, onError.message);
    }
  }

  /** @internal */
  record(stop: ReconcileStop): void {
    if (stop.status === 'maintenance') this.finalMaintenance = { status: 'maintenance', message: stop.message };
    else this.collected.push({ status: stop.status, message: stop.message });
  }

  /** The status the unit ends with. */
  settle(activeMessage: string): StatusEntry {
    return (
      this.collected.find((entry) => entry.status === 'blocked') ??
      this.collected.find((entry) => entry.status === 'waiting') ??
      this.finalMaintenance ?? { status: 'active', message: activeMessage }
    );
  }
}

/** Runs reconcile steps and sets the settled unit status. Errors other than ReconcileStop propagate. */
export async function reconcile(
  model: Model,
  steps: (r: Reconciliation) => Promise<void>,
  activeMessage = 'Ready',
): Promise<StatusEntry> {
  const reconciliation = new Reconciliation(model);
  try {
    await steps(reconciliation);
  } catch (error) {
    if (!(error instanceof ReconcileStop)) throw error;
    reconciliation.record(error);
  }
  const final = reconciliation.settle(activeMessage);
  await model.setUnitStatus(final.status, final.message);
  return final;
}
