// Hooks other k8sd modules use to take part in joins and removals, without membership
// knowing about them (e.g. security hands the KMS KEK ring to a joining control-plane node).
import type { ClusterConfig } from '../../datastore/state.js';

/** Data a control-plane node hands to a joining control-plane node, over the pinned mTLS join reply. */
export interface JoinPayloadProvider {
  /** Key in the join reply's `extras`. */
  key: string;
  /** On the serving control-plane node: what to send. May hold secrets (the reply is mTLS only, never logged). */
  export(): Promise<unknown>;
  /** On the joining node, before its files are written and services start. */
  import(data: unknown, context: { config: ClusterConfig }): Promise<void>;
  /** On the joining node, when the join is rolled back: undo what import did. */
  discard?(): Promise<void>;
}

const providers: JoinPayloadProvider[] = [];
const leaveHooks: Array<{ name: string; run: () => Promise<void> }> = [];

export function registerJoinPayload(p: JoinPayloadProvider): void {
  if (!providers.some((x) => x.key === p.key)) providers.push(p);
}

export function joinPayloadProviders(): readonly JoinPayloadProvider[] {
  return providers;
}

/** Runs when this node leaves the cluster, after its services stopped and before its files go. */
export function registerLeaveHook(name: string, run: () => Promise<void>): void {
  if (!leaveHooks.some((h) => h.name === name)) leaveHooks.push({ name, run });
}

export function leaveHookList(): ReadonlyArray<{ name: string; run: () => Promise<void> }> {
  return leaveHooks;
}
