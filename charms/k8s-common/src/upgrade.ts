// The upgrade flow on the `upgrade` peer relation: after `pre-upgrade-check` (leader) stores the
// order, a refreshed charm or a new snap resource reaches the units one at a time.
//
// Leader's app bag:  upgrade-stack=["k8s/0","k8s/2","k8s/1"]   the last unit is the next to go;
//                                                               the leader sits at the bottom
//                    upgrade-id=<n>                              this upgrade (stale unit states are ignored)
// Each unit's bag:   state=idle|ready|upgrading|completed, upgrade-id=<n>
//
// A unit that has run upgrade-charm (a refreshed charm or a new resource) and sees a stack says
// `ready` and waits. The unit at the top goes once every unit still
// in the stack is ready: `upgrading`, it installs the new snap, waits for its node to be back, and
// says `completed`; the leader pops it and the next one goes. When the stack is empty every unit
// returns to `idle`. A new snap resource with no stack is refused (Blocked) on a running unit:
// every unit would refresh at once.
import type { Action } from '../../runtime/src/charm.js';
import type { Model, Relation, RelationBag } from '../../runtime/src/model.js';
import type { Reconciliation } from '../../runtime/src/reconcile.js';

export const UPGRADE_ENDPOINT = 'upgrade';
export const APP_UPGRADE_STACK = 'upgrade-stack';
export const APP_UPGRADE_ID = 'upgrade-id';
export const UNIT_UPGRADE_STATE = 'state';
const STATE_UPGRADE_CHARM_SEEN = 'upgrade-charm-seen';

/** upgrade-charm ran: the unit takes part in the next (or current) upgrade. */
export async function noteUpgradeCharm(model: Model): Promise<void> {
  await model.state.set(STATE_UPGRADE_CHARM_SEEN, 'true');
}

export type UpgradeTurn =
  /** No upgrade running: a new snap resource is refused on a running unit (unless there is no upgrade relation at all). */
  | { readonly kind: 'none'; readonly guarded: boolean }
  /** This unit's turn: it may install the new snap, then reports completion. */
  | { readonly kind: 'granted'; readonly bag: RelationBag }
  /** This unit has upgraded; others still are. */
  | { readonly kind: 'done' };

export function parseUpgradeStack(text: string | undefined): string[] {
  if (!text) return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string' && /^[a-z0-9-]+\/\d+$/.test(item)) : [];
  } catch {
    return [];
  }
}

/** The order: the leader last (it keeps the bookkeeping), the others by unit number, highest first. */
export function buildUpgradeStack(leader: string, others: readonly string[]): string[] {
  const number = (unit: string): number => Number(unit.split('/')[1] ?? 0);
  const rest = [...new Set(others)].filter((unit) => unit !== leader).sort((a, b) => number(a) - number(b));
  return [leader, ...rest];
}

export class UpgradeInProgressError extends Error {
  constructor(readonly remaining: readonly string[]) {
    super(`an upgrade is already in progress (units left: ${[...remaining].reverse().join(', ')}); wait for it to finish`);
    this.name = 'UpgradeInProgressError';
  }
}

/** pre-upgrade-check's last step, on the leader: stores the order. */
export async function storeUpgradeStack(model: Model): Promise<string[]> {
  const relation = await model.relation(UPGRADE_ENDPOINT);
  const me = model.unit.name;
  if (!relation) throw new Error(`the '${UPGRADE_ENDPOINT}' peer relation does not exist yet; retry once the unit has settled`);
  const shared = await relation.localAppBag();
  const current = parseUpgradeStack(shared.get(APP_UPGRADE_STACK));
  if (current.length > 0) throw new UpgradeInProgressError(current);
  const stack = buildUpgradeStack(me, relation.units);
  shared.set(APP_UPGRADE_STACK, JSON.stringify(stack));
  shared.set(APP_UPGRADE_ID, String(Number(shared.get(APP_UPGRADE_ID) ?? '0') + 1));
  return stack;
}

/** A unit's state in this upgrade; undefined when it has not reported in it yet. */
async function unitState(relation: Relation, unit: string, me: string, id: string): Promise<string | undefined> {
  const bag = unit === me ? await relation.localUnitBag() : await relation.unitBag(unit);
  return bag.get(APP_UPGRADE_ID) === id ? bag.get(UNIT_UPGRADE_STATE) : undefined;
}

/** Leader: pops completed units (and units that left) off the top; clears the stack at the end. */
async function advanceStack(relation: Relation, me: string, stack: string[], id: string): Promise<string[]> {
  const present = new Set([...relation.units, me]);
  const remaining = stack.filter((unit) => present.has(unit));
  while (remaining.length > 0 && (await unitState(relation, remaining[remaining.length - 1] ?? '', me, id)) === 'completed') remaining.pop();
  const shared = await relation.localAppBag();
  if (remaining.length === 0) shared.delete(APP_UPGRADE_STACK);
  else shared.set(APP_UPGRADE_STACK, JSON.stringify(remaining));
  return remaining;
}

/**
 * Runs before the snap is ensured. Ends the reconcile (Waiting) on a unit whose turn has not come;
 * says what the unit may do otherwise.
 */
export async function upgradeTurn(r: Reconciliation): Promise<UpgradeTurn> {
  const { model } = r;
  const relation = await model.relation(UPGRADE_ENDPOINT);
  if (!relation) return { kind: 'none', guarded: false };
  const me = model.unit.name;
  const own = await relation.localUnitBag();
  const shared = await relation.localAppBag();
  const id = shared.get(APP_UPGRADE_ID) ?? '';
  let stack = parseUpgradeStack(shared.get(APP_UPGRADE_STACK));
  if (stack.length > 0 && (await model.isLeader())) stack = await advanceStack(relation, me, stack, id);

  if (stack.length === 0) {
    if ((own.get(UNIT_UPGRADE_STATE) ?? 'idle') !== 'idle') own.set(UNIT_UPGRADE_STATE, 'idle');
    await model.state.delete(STATE_UPGRADE_CHARM_SEEN);
    return { kind: 'none', guarded: true };
  }
  const state = await unitState(relation, me, me, id);
  if (!stack.includes(me)) {
    if (state === 'completed') {
      r.waiting(`Upgraded; waiting for ${[...stack].reverse().join(', ')}`);
      return { kind: 'done' };
    }
    // Joined after pre-upgrade-check: it installs what is attached now, like any new unit.
    return { kind: 'none', guarded: false };
  }
  if (state === 'completed') {
    r.waiting('Upgraded; waiting for the leader to let the next unit go');
    return { kind: 'done' };
  }
  if (state !== 'upgrading' && state !== 'ready') {
    // Not refreshed yet: the unit runs as usual until its upgrade-charm.
    if ((await model.state.get(STATE_UPGRADE_CHARM_SEEN)) !== 'true') return { kind: 'none', guarded: true };
    own.set(APP_UPGRADE_ID, id);
    own.set(UNIT_UPGRADE_STATE, 'ready');
  }
  const top = stack[stack.length - 1];
  if (top !== me) r.wait(`Upgrade in progress: waiting for ${top} to upgrade first`);
  const notReady: string[] = [];
  for (const unit of stack.filter((item) => item !== me)) {
    if ((await unitState(relation, unit, me, id)) !== 'ready') notReady.push(unit);
  }
  if (notReady.length > 0) r.wait(`Upgrade in progress: waiting for ${notReady.join(', ')} to be ready`);
  own.set(UNIT_UPGRADE_STATE, 'upgrading');
  await model.log('INFO', `upgrade granted to ${me}`);
  return { kind: 'granted', bag: own };
}

/** The granted unit is back (snap installed, node ready): the leader lets the next one go. */
export async function completeUpgradeTurn(model: Model, turn: UpgradeTurn, nodeReady: boolean): Promise<void> {
  if (turn.kind !== 'granted' || !nodeReady) return;
  turn.bag.set(UNIT_UPGRADE_STATE, 'completed');
  await model.state.delete(STATE_UPGRADE_CHARM_SEEN);
  await model.log('INFO', `${model.unit.name} upgraded`);
}

export const NEW_RESOURCE_WITHOUT_CHECK =
  'A new k8s snap resource is attached: run the pre-upgrade-check action on the leader to refresh the units one at a time';

/** pre-upgrade-check's checks passed: store the order in which units will upgrade and report it. */
export async function storeStackAndReport(action: Action, model: Model, extra: Readonly<Record<string, string>>): Promise<void> {
  let stack: string[];
  try {
    stack = await storeUpgradeStack(model);
  } catch (error) {
    await action.fail(`pre-upgrade-check: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  await action.setResults({ result: 'ready to upgrade', ...extra, 'upgrade-order': [...stack].reverse().join(',') });
}
