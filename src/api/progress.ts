// Progress events that long-running endpoints (bootstrap, join, CA rotation, snapshot restore)
// stream as NDJSON, one event per line; the last one is `done` or `error`.

/** A flow started a step, or rolled one back. */
export type StepEvent = { type: 'step'; step: string; title: string } | { type: 'rollback'; step: string; error?: string };

export type ProgressEvent =
  | StepEvent
  /** A step finished on one node of the cluster (CA rotation). */
  | { type: 'node'; step: string; node: string; role: string; detail: string }
  | { type: 'info'; message: string }
  | { type: 'done'; metadata: Record<string, unknown> }
  | { type: 'error'; error: string };
