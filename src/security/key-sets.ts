// The rules every control-plane node applies to its encryption keys (KMS KEKs or aesgcm keys)
// during a cluster-wide rotation, and the plan the rotating node makes from all nodes' keys.
//
// A key set has one current key (the one new writes use) and keys of other generations.
// Keys newer than the current one are *staged*: every node can decrypt with them, none
// writes with them yet. A rotation stages a new key on every node first and only then makes
// it current everywhere, so no apiserver ever writes with a key another node lacks.
//
// Merging two key sets is deterministic (same result on every node, in any order):
//   - the keys are the union; one id always means one secret;
//   - two different keys of the same generation mean two concurrent rotations: refused;
//   - the current key is the newer of the two current keys. Activation only moves forward,
//     so a staged key never becomes current through a merge unless some node made it current.
import { EncryptionKeyConflictError, SecurityError } from './errors.js';

/** What the rotation rules need to know about a key. `secret` is key material: never log it. */
export interface VersionedKey {
  id: string;
  /** Orders keys. One generation, one key: two keys of one generation come from concurrent rotations. */
  generation: number;
  secret: string;
}

export interface KeySet<K extends VersionedKey> {
  current: string;
  /** Oldest first. */
  keys: K[];
}

/** One node's keys, as the rotating node collected them. */
export interface NodeKeys<T> {
  node: string;
  keys: T;
}

export interface RotationPlan<K extends VersionedKey> {
  /** The key that writes before the rotation. */
  previousKeyId: string;
  newKeyId: string;
  /** Pushed by the stage step: every node's keys united, the previous key still current, the new key staged. */
  staged: KeySet<K>;
  /** Pushed by the activate step: the same keys, the new key current. */
  active: KeySet<K>;
  /** Staged keys of an earlier, interrupted rotation: never written with anywhere, dropped by the stage step. */
  abandoned: string[];
  /** Nodes that lacked a key, or wrote with an older one, before this rotation; the pushes bring them up to date. */
  outOfSync: string[];
}

function byGeneration<K extends VersionedKey>(a: K, b: K): number {
  return a.generation - b.generation || a.id.localeCompare(b.id);
}

function find<K extends VersionedKey>(set: KeySet<K>, id: string): K {
  const key = set.keys.find((k) => k.id === id);
  if (!key) throw new SecurityError(`the current key "${id}" is not in the key set; restore the keys from another control-plane node`);
  return key;
}

function currentGeneration<K extends VersionedKey>(set: KeySet<K>): number {
  return find(set, set.current).generation;
}

/** Keys newer than the current one: decrypt-capable on every node that has them, never used to write. */
export function stagedKeys<K extends VersionedKey>(set: KeySet<K>): K[] {
  const current = currentGeneration(set);
  return set.keys.filter((k) => k.generation > current);
}

/** Union of two key sets; the current key is the newer of the two. See the rules at the top. */
export function mergeKeySets<K extends VersionedKey>(a: KeySet<K>, b: KeySet<K>): KeySet<K> {
  const byId = new Map<string, K>();
  const idOfGeneration = new Map<number, string>();
  for (const key of [...a.keys, ...b.keys]) {
    const same = byId.get(key.id);
    if (same && same.secret !== key.secret) {
      throw new EncryptionKeyConflictError(`two different keys are both named "${key.id}"; keep the copy that data was written with and remove the other by hand`);
    }
    const other = idOfGeneration.get(key.generation);
    if (other !== undefined && other !== key.id) {
      throw new EncryptionKeyConflictError(
        `two different keys have generation ${key.generation} (${other}, ${key.id}): control-plane nodes rotated at the same time. ` +
          'Keep the keys of the node whose apiserver has written with that key (see `k8s secrets-encryption status` on each node), ' +
          'copy them to the others, then rotate again.',
      );
    }
    byId.set(key.id, same ?? key);
    idOfGeneration.set(key.generation, key.id);
  }
  const current = currentGeneration(b) > currentGeneration(a) ? b.current : a.current;
  return { current, keys: [...byId.values()].sort(byGeneration) };
}

/** Adds a staged key. It must be newer than every key; other staged keys (an interrupted rotation) are dropped. */
export function stageKey<K extends VersionedKey>(set: KeySet<K>, key: K): KeySet<K> {
  const newest = Math.max(...set.keys.map((k) => k.generation));
  if (key.generation <= newest) {
    throw new SecurityError(`a staged key must be newer than every key; "${key.id}" has generation ${key.generation}, the newest is ${newest}`);
  }
  const current = currentGeneration(set);
  return { current: set.current, keys: [...set.keys.filter((k) => k.generation <= current), key] };
}

/** Makes a key current. Only forward: an older key never becomes current again. */
export function activateKey<K extends VersionedKey>(set: KeySet<K>, id: string): KeySet<K> {
  const key = set.keys.find((k) => k.id === id);
  if (!key) throw new SecurityError(`cannot make "${id}" current: it was never staged on this node; run the rotation again`);
  if (key.generation < currentGeneration(set)) {
    throw new SecurityError(`cannot make "${id}" current: the newer key "${set.current}" already is`);
  }
  return { current: id, keys: set.keys };
}

/** Removes a staged key (rollback of a stage). A current or older key may have written data: refused. */
export function discardStagedKey<K extends VersionedKey>(set: KeySet<K>, id: string): KeySet<K> {
  const key = set.keys.find((k) => k.id === id);
  if (!key) return set;
  if (key.generation <= currentGeneration(set)) {
    throw new SecurityError(`"${id}" is not a staged key (it is current or older and may have encrypted data); it stays`);
  }
  return { current: set.current, keys: set.keys.filter((k) => k.id !== id) };
}

/**
 * Node side of the stage step: merge what the rotating node sent, keep `id` staged, drop any
 * other staged key. Refused when `id` is not staged after the merge.
 */
export function applyStage<K extends VersionedKey>(local: KeySet<K>, sent: KeySet<K>, id: string): KeySet<K> {
  const merged = mergeKeySets(local, sent);
  const key = merged.keys.find((k) => k.id === id);
  if (!key) throw new SecurityError(`the staged key "${id}" is not in the keys that were sent`);
  if (key.generation <= currentGeneration(merged)) {
    throw new EncryptionKeyConflictError(`"${id}" cannot be staged: this node already writes with "${merged.current}"; another rotation ran meanwhile, retry`);
  }
  const current = currentGeneration(merged);
  return { current: merged.current, keys: merged.keys.filter((k) => k.generation <= current || k.id === id) };
}

/** Node side of the activate step: merge what the rotating node sent, then make `id` current. */
export function applyActivate<K extends VersionedKey>(local: KeySet<K>, sent: KeySet<K>, id: string): KeySet<K> {
  return activateKey(mergeKeySets(local, sent), id);
}

function sameKeys<K extends VersionedKey>(a: KeySet<K>, b: KeySet<K>): boolean {
  const ids = (s: KeySet<K>): string => s.keys.map((k) => k.id).sort().join(',');
  return a.current === b.current && ids(a) === ids(b);
}

/**
 * The rotating node's plan, from every control-plane node's keys (its own included). Refuses
 * when two nodes hold conflicting keys, naming them. `newKey` makes the key of the given
 * generation (newer than any key on any node, staged ones included).
 */
export async function planRotation<K extends VersionedKey>(
  nodes: ReadonlyArray<NodeKeys<KeySet<K>>>,
  newKey: (generation: number) => Promise<K>,
): Promise<RotationPlan<K>> {
  if (nodes.length === 0) throw new SecurityError('no control-plane node to rotate the key on');
  let cluster = nodes[0]!.keys;
  for (const { node, keys } of nodes.slice(1)) {
    try {
      cluster = mergeKeySets(cluster, keys);
    } catch (error) {
      if (!(error instanceof EncryptionKeyConflictError)) throw error;
      const earlier = nodes.slice(0, nodes.findIndex((n) => n.node === node)).map((n) => n.node);
      throw new EncryptionKeyConflictError(`the keys of node "${node}" conflict with those of ${earlier.map((n) => `"${n}"`).join(', ')}: ${error.message}`);
    }
  }
  const abandoned = stagedKeys(cluster).map((k) => k.id);
  const newest = Math.max(...cluster.keys.map((k) => k.generation));
  const key = await newKey(newest + 1);
  const staged = stageKey(cluster, key);
  const settled: KeySet<K> = { current: cluster.current, keys: cluster.keys.filter((k) => !abandoned.includes(k.id)) };
  return {
    previousKeyId: cluster.current,
    newKeyId: key.id,
    staged,
    active: activateKey(staged, key.id),
    abandoned,
    outOfSync: nodes.filter((n) => !sameKeys({ current: n.keys.current, keys: n.keys.keys.filter((k) => !abandoned.includes(k.id)) }, settled)).map((n) => n.node),
  };
}
