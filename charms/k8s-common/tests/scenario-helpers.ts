// Helpers for multi-unit scenarios: the charms' metadata, and how one unit's output State
// looks from another unit (a secret the leader owns, seen by the unit it was granted to).
import { execaSync } from 'execa';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

/** Files a snap-installation resource can be: a .snap (a squashfs image), a tarball holding some, an empty file. */
export function snapResources(): { dir: string; snap: string; tarball: string; twoSnaps: string; noSnap: string; empty: string; notAnArchive: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'charm-snap-resource-'));
  const snap = path.join(dir, 'k8s_1.36_amd64.snap');
  writeFileSync(snap, 'hsqs, then the rest of a squashfs image');
  const other = path.join(dir, 'other.snap');
  writeFileSync(other, 'hsqs too');
  const readme = path.join(dir, 'README');
  writeFileSync(readme, 'no snap here');
  const tar = (name: string, ...members: string[]): string => {
    const file = path.join(dir, name);
    execaSync('tar', ['-czf', file, '-C', dir, ...members]);
    return file;
  };
  const empty = path.join(dir, 'snap-installation.tar.gz');
  writeFileSync(empty, '');
  const notAnArchive = path.join(dir, 'garbage.bin');
  writeFileSync(notAnArchive, 'neither squashfs nor tar');
  return {
    dir,
    snap,
    tarball: tar('one.tar.gz', 'README', path.basename(snap)),
    twoSnaps: tar('two.tar.gz', path.basename(snap), 'other.snap'),
    noSnap: tar('none.tar.gz', 'README'),
    empty,
    notAnArchive,
  };
}
