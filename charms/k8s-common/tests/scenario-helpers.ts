// Helpers for multi-unit scenarios: the charms' metadata, and how one unit's output State
// looks from another unit (a secret the leader owns, seen by the unit it was granted to).
import { fileURLToPath } from 'node:url';
import { loadCharmMeta } from '../../runtime/src/metadata.js';
import type { RelationState, SecretState, State } from '../../runtime/src/testing/state.js';

export const k8sMeta = loadCharmMeta(fileURLToPath(new URL('../../k8s/charmcraft.yaml', import.meta.url)));
export const workerMeta = loadCharmMeta(fileURLToPath(new URL('../../k8s-worker/charmcraft.yaml', import.meta.url)));

export const INSTALLED_SNAP = { version: 'v1.36.0', held: true } as const;

/** The owner's secret as a unit of another application sees it: granted only if the owner granted it. */
export function consumerView(secret: SecretState, unit: string, trackedRevision?: number): SecretState {
  const app = unit.split('/')[0] ?? '';
  const granted = Object.values(secret.grants ?? {}).some((grantees) => grantees.includes(unit) || grantees.includes(app));
  return {
    id: secret.id,
    revisions: secret.revisions,
    ...(granted ? { grantedTo: 'unit' as const } : {}),
    ...(trackedRevision !== undefined ? { trackedRevision } : {}),
  };
}

export function relationById(state: State, id: number): RelationState {
  const relation = state.relations.find((item) => item.id === id);
  if (!relation) throw new Error(`no relation ${id} in the State`);
  return relation;
}

export function onlySecret(state: State): SecretState {
  if (state.secrets.length !== 1) throw new Error(`expected one secret, found ${state.secrets.length}`);
  const [secret] = state.secrets;
  if (!secret) throw new Error('no secret');
  return secret;
}

/** Replaces relation `id` in a State with the given fields merged in. */
export function updateRelation(state: State, id: number, fields: Partial<RelationState>): State {
  return { ...state, relations: state.relations.map((relation) => (relation.id === id ? { ...relation, ...fields } : relation)) };
}
