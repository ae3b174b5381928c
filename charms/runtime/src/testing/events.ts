// The events a test can run, built like ops' `ctx.on.<event>(…)`.
import type { JsonValue } from '../hooktools.js';
import type { RelationEventKind } from '../juju-context.js';
import type { RelationState, SecretState } from './state.js';

export interface HookTestEvent {
  readonly kind: 'hook';
  readonly name: string;
  readonly outOfBand: boolean;
  readonly relation?: RelationState;
  readonly relationKind?: RelationEventKind;
  /** The remote unit number this relation event is about. */
  readonly remoteUnit?: number;
  /** For relation-departed: the unit that is leaving ('app/N'); defaults to the remote unit. */
  readonly departingUnit?: string;
  readonly secret?: SecretState;
  readonly secretRevision?: number;
}

export interface ActionTestEvent {
  readonly kind: 'action';
  readonly name: string;
  readonly params: Readonly<Record<string, JsonValue>>;
}

export type TestEvent = HookTestEvent | ActionTestEvent;

function hook(name: string, extra: Partial<HookTestEvent> = {}): HookTestEvent {
  return { kind: 'hook', name, outOfBand: false, ...extra };
}

function relationEvent(kind: RelationEventKind, relation: RelationState, extra: Partial<HookTestEvent> = {}): HookTestEvent {
  return hook(`${relation.endpoint}-relation-${kind}`, { relation, relationKind: kind, ...extra });
}

export interface RemoteUnitOption {
  readonly remoteUnit?: number;
}

export const on = {
  install: (): HookTestEvent => hook('install'),
  start: (): HookTestEvent => hook('start'),
  stop: (): HookTestEvent => hook('stop'),
  remove: (): HookTestEvent => hook('remove'),
  configChanged: (): HookTestEvent => hook('config-changed'),
  upgradeCharm: (): HookTestEvent => hook('upgrade-charm'),
  leaderElected: (): HookTestEvent => hook('leader-elected'),
  leaderSettingsChanged: (): HookTestEvent => hook('leader-settings-changed'),
  /** outOfBand: the bare 'update_status' dispatch a systemd timer sends through juju-exec. */
  updateStatus: (options: { outOfBand?: boolean } = {}): HookTestEvent => hook('update-status', { outOfBand: options.outOfBand ?? false }),
  relationCreated: (relation: RelationState): HookTestEvent => relationEvent('created', relation),
  relationJoined: (relation: RelationState, options: RemoteUnitOption = {}): HookTestEvent =>
    relationEvent('joined', relation, options.remoteUnit !== undefined ? { remoteUnit: options.remoteUnit } : {}),
  relationChanged: (relation: RelationState, options: RemoteUnitOption = {}): HookTestEvent =>
    relationEvent('changed', relation, options.remoteUnit !== undefined ? { remoteUnit: options.remoteUnit } : {}),
  relationDeparted: (relation: RelationState, options: RemoteUnitOption & { departingUnit?: string } = {}): HookTestEvent =>
    relationEvent('departed', relation, {
      ...(options.remoteUnit !== undefined ? { remoteUnit: options.remoteUnit } : {}),
      ...(options.departingUnit !== undefined ? { departingUnit: options.departingUnit } : {}),
    }),
  relationBroken: (relation: RelationState): HookTestEvent => relationEvent('broken', relation),
  secretChanged: (secret: SecretState): HookTestEvent => hook('secret-changed', { secret }),
  secretRemove: (secret: SecretState, revision: number): HookTestEvent => hook('secret-remove', { secret, secretRevision: revision }),
  action: (name: string, params: Readonly<Record<string, JsonValue>> = {}): ActionTestEvent => ({ kind: 'action', name, params }),
};
