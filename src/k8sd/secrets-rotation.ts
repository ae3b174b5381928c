// Cluster-wide rotation of the secrets-encryption key (the KMS KEK, or the aesgcm key).
//
// Every control-plane node keeps its own copy of the keys (the KEK ring is deliberately not in
// etcd, next to the data it protects), and every apiserver must be able to decrypt what any
// other apiserver wrote. A new key used for writes on one node before the others hold it makes
// Secrets unreadable through their apiservers (the k3s secrets-encrypt HA failure, k3s#7195).
// So the node that runs `k8s secrets-encryption rotate` orchestrates: lock, collect, plan, stage,
// activate (flows/rotate-keys.ts, each step with its undo); then re-encryption of every Secret
// through this node's apiserver, as before. This file reaches the nodes, takes the lock, and
// holds what the secrets-encryption routes call (routes/secrets/, and routes/peer/encryption-keys-*.ts:
// what the other nodes answer a rotation with).
//
// Joins: a joining control-plane node receives the keys in its join reply, which is built
// while the join lock is held, and that lock is held until the node is promoted. Holding the
// same lock here means a join sees either the keys before this rotation (and is then a member
// that `collect` finds) or the keys after it, never a half-staged state it would keep. A node
// record still marked `joining` (its lock lease may have expired) makes the rotation refuse.
//
// Key material travels only over the pinned mTLS cluster API, only to and from control-plane
// members (checked here against the node records in etcd: workers are members too), and is
// never logged; files that hold keys are written 0600.
import { readFileSync } from 'node:fs';
import { commitFileSet } from '../host/files.js';
import type { ClusterConfig } from '../datastore/state.js';
import {
  encryptionPaths,
  readAesgcmKeys,
  SecurityError,
  type EncryptionKeys,
  type EncryptionKeySummary,
  type KeyChange,
  type SecurityManager,
} from '../security/index.js';
import type { NodeContext } from './node-context.js';
import { FlowError } from './flows/flow.js';
import { describeFailures, eachNode, keyRotation, rotateKeys, type ControlPlaneHolders, type KeyHolder } from './flows/rotate-keys.js';
import { ApiError, type Request } from './http.js';
import { peer, type ClusterKeyStatus, type EncryptionStatus, type NodeKeyStatus, type ReencryptResult } from '../api/index.js';
import { parseRequest } from '../api/parse.js';
import { fingerprintOf } from './identity.js';
import { apiserverGet, coreApi } from './kube.js';
import { K8SD_CLUSTER_PORT } from './cluster/port.js';
import { takeClusterLock } from './cluster/lock.js';
import { joinHostPort, peerRequest, type PeerTarget } from './cluster/peer.js';
import { MembershipStore } from './membership/store.js';

/** The join lock's holder while a key rotation runs. */
const LOCK_HOLDER_PREFIX = 'secrets-encryption-rotation@';
/** Long enough for an aesgcm stage (each apiserver reloads its config within about a minute). */
const LOCK_TTL_SECONDS = 300;
const LOCK_WAIT_MS = 30_000;
const READ_TIMEOUT_MS = 15_000;
const KMS_CHANGE_TIMEOUT_MS = 30_000;
/** kube-apiserver checks the EncryptionConfiguration file for changes once a minute. */
const CONFIG_RELOAD_TIMEOUT_MS = 150_000;
const STATUS_TIMEOUT_MS = 5_000;

export type { ClusterKeyStatus, NodeKeyStatus };

export interface RotationResult {
  provider: 'kms' | 'aesgcm';
  keyId: string;
  previousKeyId: string;
  /** Control-plane nodes that hold the new key as their write key. */
  nodes: string[];
  /** Staged keys of an earlier, interrupted rotation that this one removed. */
  abandoned: string[];
  /** Nodes whose keys differed from the others' before this rotation (brought up to date). */
  outOfSync: string[];
}

/** The cluster configuration, on a control-plane node whose datastore is connected. */
export async function clusterConfig(d: NodeContext): Promise<ClusterConfig> {
  d.requireControlPlane();
  const config = await d.state?.getConfig();
  if (!config) throw new ApiError(503, 'the datastore is not connected yet; retry in a few seconds');
  return config;
}

function membershipStore(d: NodeContext): MembershipStore {
  if (!d.state) throw new ApiError(503, 'the datastore is not connected yet; retry in a few seconds');
  return new MembershipStore(d.state);
}

/** Security errors say what to do; they become 409s instead of anonymous 500s. */
async function asApiErrors<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (error) {
    if (error instanceof SecurityError) throw new ApiError(409, error.message);
    throw error;
  }
}

/**
 * Writes what a key change returned (aesgcm: the EncryptionConfiguration) and, when asked,
 * waits until this node's apiserver has loaded it: kube-apiserver reports the SHA-256 of the
 * config it runs with in apiserver_encryption_config_controller_last_config_info.
 */
async function commitKeyChange(d: NodeContext, change: KeyChange, waitForApiserver: boolean): Promise<EncryptionKeySummary> {
  if (change.files.length === 0) return change.summary;
  commitFileSet(change.files, d.layout.k8sdStateDir);
  if (waitForApiserver) {
    for (const file of change.files) await waitForEncryptionConfig(d, file.content);
  }
  return change.summary;
}

/** Resolves once this node's kube-apiserver runs with an EncryptionConfiguration of exactly this content. */
export async function waitForEncryptionConfig(d: NodeContext, content: string, timeoutMs = CONFIG_RELOAD_TIMEOUT_MS): Promise<void> {
  // The apiserver's own fingerprint of the file (not a key): sha256 over the bytes it read.
  const wanted = `hash="sha256:${(await d.crypto.sha256(content)).toString('hex')}"`;
  const admin = d.layout.kubeconfig('admin.conf');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const reply = await apiserverGet(admin, '/metrics', 10_000);
    const loaded = reply?.body.split('\n').some((line) => line.startsWith('apiserver_encryption_config_controller_last_config_info{') && line.includes(wanted));
    if (loaded) return;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  throw new ApiError(
    504,
    `kube-apiserver on this node has not loaded the new encryption config within ${Math.round(timeoutMs / 1000)} s; ` +
      'check its log for "error processing encryption config file"',
  );
}

function localHolder(d: NodeContext, manager: SecurityManager, name: string): KeyHolder {
  const config = (): Promise<ClusterConfig> => clusterConfig(d);
  return {
    name,
    keys: async () => asApiErrors(async () => manager.exportKeys(await config())),
    summary: async () => asApiErrors(async () => manager.keySummary(await config())),
    // Staged aesgcm keys must be loaded by the apiserver before any node writes with them.
    stage: async (keys, keyId) => asApiErrors(async () => commitKeyChange(d, await manager.stageKey(await config(), keys, keyId), true)),
    activate: async (keys, keyId) => asApiErrors(async () => commitKeyChange(d, await manager.activateKey(await config(), keys, keyId), false)),
    discard: async (keyId) => asApiErrors(async () => commitKeyChange(d, await manager.discardStagedKey(await config(), keyId), false)),
  };
}

function peerHolder(d: NodeContext, name: string, target: PeerTarget, provider: 'kms' | 'aesgcm'): KeyHolder {
  const identity = { cert: d.identity.cert, key: d.identity.key };
  const changeTimeout = provider === 'aesgcm' ? CONFIG_RELOAD_TIMEOUT_MS + 30_000 : KMS_CHANGE_TIMEOUT_MS;
  return {
    name,
    keys: async () => (await peerRequest<{ keys: EncryptionKeys }>(identity, target, 'GET', peer.encryptionKeysGet.path, undefined, READ_TIMEOUT_MS)).keys,
    summary: async (timeoutMs = READ_TIMEOUT_MS) => peerRequest<EncryptionKeySummary>(identity, target, 'GET', peer.encryptionKeysSummary.path, undefined, timeoutMs),
    stage: async (keys, keyId) => peerRequest<EncryptionKeySummary>(identity, target, 'POST', peer.encryptionKeysStage.path, { keys, keyId }, changeTimeout),
    activate: async (keys, keyId) => peerRequest<EncryptionKeySummary>(identity, target, 'POST', peer.encryptionKeysActivate.path, { keys, keyId }, changeTimeout),
    discard: async (keyId) => peerRequest<EncryptionKeySummary>(identity, target, 'POST', peer.encryptionKeysDiscard.path, { keyId }, changeTimeout),
  };
}

/** This node and every other control-plane member, from the node records. Refuses while one is joining. */
async function controlPlane(d: NodeContext, manager: SecurityManager, provider: 'kms' | 'aesgcm'): Promise<ControlPlaneHolders> {
  const node = d.requireControlPlane();
  const records = (await membershipStore(d).members()).filter((r) => r.role === 'control-plane');
  const joining = records.filter((r) => r.joining).map((r) => r.name);
  if (joining.length > 0) {
    throw new ApiError(
      409,
      `control-plane node(s) ${joining.join(', ')} are joining; rotate when the join has finished ` +
        `(if it died, remove the node with "k8s remove-node ${joining[0]}")`,
    );
  }
  const peers = records
    .filter((r) => r.name !== node.name)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => peerHolder(d, r.name, { address: joinHostPort(r.address, K8SD_CLUSTER_PORT), fingerprints: [fingerprintOf(d.crypto, r.clusterCert)] }, provider));
  return { self: localHolder(d, manager, node.name), peers };
}

async function takeLock(store: MembershipStore, holder: string): Promise<string> {
  return takeClusterLock(store, holder, {
    ttlSeconds: LOCK_TTL_SECONDS,
    waitMs: LOCK_WAIT_MS,
    pauseMs: 500,
    refuse: (current, timedOut) =>
      timedOut ? new ApiError(409, `the cluster lock is held by "${current ?? 'another operation'}" (a node joining, or another rotation); nothing was changed, retry when it has finished`) : undefined,
  });
}

/** Rotates the write key on every control-plane node: stage everywhere, then activate everywhere. */
export async function rotateClusterKey(d: NodeContext, manager: SecurityManager, config: ClusterConfig): Promise<RotationResult> {
  const provider = config.secretsEncryption;
  if (provider !== 'kms' && provider !== 'aesgcm') {
    throw new ApiError(409, 'security.secrets-encryption is "none"; enable kms or aesgcm before rotating keys');
  }
  const store = membershipStore(d);
  const ctx = keyRotation({
    log: d.log,
    takeLock: async () => takeLock(store, `${LOCK_HOLDER_PREFIX}${d.requireControlPlane().name}`),
    releaseLock: async (lease) => store.unlock(lease),
    controlPlane: async () => controlPlane(d, manager, provider),
    planRotation: async (collected) => asApiErrors(() => manager.planClusterRotation(config, collected)),
  });
  try {
    await rotateKeys(ctx, (e) => {
      if (e.type === 'step') d.log.info(`secrets-encryption rotate: ${e.title}`, { step: e.step });
      else d.log.warn('secrets-encryption rotate: rolled back', { step: e.step, ...(e.error ? { error: e.error } : {}) });
    });
  } catch (error) {
    const cause = error instanceof FlowError ? error.cause : error;
    const left = ctx.leftStaged.length ? ` The unused staged key stays on ${ctx.leftStaged.join(', ')} until the next rotation removes it.` : '';
    throw new ApiError(cause instanceof ApiError ? cause.status : 500, `${(error as Error).message}${left}`);
  }
  const plan = ctx.plan!;
  if (ctx.notActivated.length > 0) {
    throw new ApiError(
      502,
      `the new key "${plan.newKeyId}" writes on ${ctx.activatedOn.join(', ')}, but ${describeFailures(ctx.notActivated)} did not switch to it. ` +
        `Every control-plane node holds both keys, so every Secret stays readable. Once k8sd answers on ` +
        `${ctx.notActivated.map((f) => f.holder.name).join(', ')}, run "k8s secrets-encryption rotate" again: it brings every node up to date`,
    );
  }
  d.log.info('rotated the secrets encryption key on every control-plane node', { keyId: plan.newKeyId, previous: plan.previousKeyId, nodes: ctx.activatedOn });
  return { provider, keyId: plan.newKeyId, previousKeyId: plan.previousKeyId, nodes: ctx.activatedOn, abandoned: plan.abandoned, outOfSync: plan.outOfSync };
}

/** Which key every control-plane node writes with and holds (no key material). Unreachable nodes are listed with the reason. */
export async function clusterKeyStatus(d: NodeContext, manager: SecurityManager, config: ClusterConfig): Promise<ClusterKeyStatus | undefined> {
  const provider = config.secretsEncryption;
  if (provider !== 'kms' && provider !== 'aesgcm') return undefined;
  const cp = await controlPlane(d, manager, provider).catch(() => undefined);
  if (!cp) return undefined;
  const read = await eachNode([cp.self, ...cp.peers], (h) => h.summary(STATUS_TIMEOUT_MS));
  const nodes: NodeKeyStatus[] = read.map((r) =>
    r.value
      ? { name: r.holder.name, writeKeyId: r.value.writeKeyId, keyIds: r.value.keyIds, stagedKeyIds: r.value.stagedKeyIds }
      : { name: r.holder.name, error: r.error?.message ?? 'no answer' },
  );
  const fingerprint = (n: NodeKeyStatus): string => `${n.writeKeyId}|${(n.keyIds ?? []).join(',')}`;
  const keysAgree = nodes.every((n) => !n.error) && new Set(nodes.map(fingerprint)).size === 1;
  return { nodes, keysAgree };
}

/**
 * The caller must be a control-plane member (workers are members too, but never hold these
 * keys). Stricter than membership/peer-auth.ts on purpose, since these routes hand out key
 * material: the node records in etcd only (not the peers.json cache), and not a node that is
 * still joining.
 */
export async function requireKeyHolderCaller(d: NodeContext, req: Request): Promise<void> {
  const caller = req.peerFingerprint
    ? (await membershipStore(d).members()).find((r) => fingerprintOf(d.crypto, r.clusterCert) === req.peerFingerprint)
    : undefined;
  if (!caller || caller.role !== 'control-plane' || caller.joining) {
    throw new ApiError(403, 'only a control-plane member of this cluster may read or change its encryption keys');
  }
}

/** The body of a stage or an activation, parsed with that endpoint's schema: an error names the path called. */
export function keyChangeBody(e: typeof peer.encryptionKeysStage | typeof peer.encryptionKeysActivate, req: Request): { keys: EncryptionKeys; keyId: string } {
  return parseRequest(e, req.body);
}

/** This node's keys, as the routes other control-plane nodes call during a rotation answer with them (routes/peer/encryption-keys-*.ts). */
export function thisNodeKeys(d: NodeContext, manager: SecurityManager): KeyHolder {
  return localHolder(d, manager, d.requireControlPlane().name);
}

/** Re-encrypts every Secret through this node's apiserver, with the current write key. */
export async function reencryptSecrets(d: NodeContext, manager: SecurityManager, c: ClusterConfig): Promise<ReencryptResult> {
  // aesgcm: the apiserver must run with the current write key, or the rewrite keeps the old one.
  // (KMS: manager.reencrypt waits for the apiserver to adopt the current KEK itself.)
  if (c.secretsEncryption === 'aesgcm' && readAesgcmKeys(encryptionPaths(d.layout).configFile).length > 0) {
    await waitForEncryptionConfig(d, readFileSync(encryptionPaths(d.layout).configFile, 'utf8'));
  }
  const report = await manager.reencrypt(c, await coreApi(d.layout.kubeconfig('admin.conf')));
  return { rewritten: report.rewritten, failed: report.failed.length };
}

/** `k8s secrets-encryption status`: this node's provider and write key, and every control-plane node's keys. */
export async function encryptionStatus(d: NodeContext, manager: SecurityManager): Promise<EncryptionStatus> {
  const c = await clusterConfig(d);
  const cluster = await clusterKeyStatus(d, manager, c);
  return { ...manager.status(c), ...(cluster ? { controlPlane: cluster } : {}) };
}

/** `k8s secrets-encryption rotate`: a new key on every control-plane node, then (`reencrypt`) every Secret rewritten with it. */
export async function rotateEncryptionKey(d: NodeContext, manager: SecurityManager, reencrypt: boolean): Promise<RotationResult & Partial<ReencryptResult>> {
  return d.lock.run('key rotation', async () => {
    const c = await clusterConfig(d);
    const rotated = await rotateClusterKey(d, manager, c);
    return { ...rotated, ...(reencrypt ? await reencryptSecrets(d, manager, c) : {}) };
  });
}
