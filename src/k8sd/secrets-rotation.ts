// Cluster-wide rotation of the secrets-encryption key (the KMS KEK, or the aesgcm key).
//
// Every control-plane node keeps its own copy of the keys (the KEK ring is deliberately not in
// etcd, next to the data it protects), and every apiserver must be able to decrypt what any
// other apiserver wrote. A new key used for writes on one node before the others hold it makes
// Secrets unreadable through their apiservers (the k3s secrets-encrypt HA failure, k3s#7195).
// So the node that runs `k8s secrets-encryption rotate` orchestrates, in named steps:
//
//   lock      the cluster's join lock, so no control-plane node joins mid-rotation (below);
//   collect   every control-plane node's keys; one that does not answer stops the rotation
//             before anything changed;
//   plan      the union of all keys plus a new one, newer than any (SecurityManager);
//   stage     every node adds the new key for decryption only. aesgcm: each node also waits
//             until its apiserver has reloaded the config. If any node fails, the staged key
//             is removed again wherever it landed and the rotation is refused;
//   activate  every node makes the new key current (this node first). From here on every
//             node can decrypt under both keys, so a node that misses this step is behind,
//             not broken: its apiserver keeps writing with the previous key;
// then re-encryption of every Secret through this node's apiserver, as before.
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
import { commitFileSet } from '../host/files.js';
import type { ClusterConfig } from '../datastore/state.js';
import {
  SecurityError,
  type ClusterRotationPlan,
  type EncryptionKeys,
  type EncryptionKeySummary,
  type KeyChange,
  type NodeKeys,
  type SecurityManager,
} from '../security/index.js';
import type { NodeContext } from './node-context.js';
import { FlowError, runFlow, type Step } from './flows/flow.js';
import { at, ApiError, type Request, type Route } from './http.js';
import { peer, type ClusterKeyStatus, type NodeKeyStatus } from '../api/index.js';
import { parseRequest } from '../api/parse.js';
import { fingerprintOf } from './identity.js';
import { apiserverGet } from './kube.js';
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

/** One control-plane node's part in a rotation: this node directly, the others over the cluster API. */
interface KeyHolder {
  name: string;
  keys(): Promise<EncryptionKeys>;
  summary(timeoutMs?: number): Promise<EncryptionKeySummary>;
  stage(keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary>;
  activate(keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary>;
  discard(keyId: string): Promise<EncryptionKeySummary>;
}

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

async function clusterConfig(d: NodeContext): Promise<ClusterConfig> {
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

interface ControlPlane {
  self: KeyHolder;
  peers: KeyHolder[];
}

/** This node and every other control-plane member, from the node records. Refuses while one is joining. */
async function controlPlane(d: NodeContext, manager: SecurityManager, provider: 'kms' | 'aesgcm'): Promise<ControlPlane> {
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

async function eachNode<T>(holders: KeyHolder[], f: (h: KeyHolder) => Promise<T>): Promise<Array<{ holder: KeyHolder; value?: T; error?: Error }>> {
  const settled = await Promise.allSettled(holders.map(f));
  return settled.map((s, i) => (s.status === 'fulfilled' ? { holder: holders[i]!, value: s.value } : { holder: holders[i]!, error: s.reason as Error }));
}

function describeFailures(failures: Array<{ holder: KeyHolder; error?: Error }>): string {
  return failures.map((f) => `"${f.holder.name}" (${f.error?.message ?? 'no answer'})`).join(', ');
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

interface RotationContext {
  d: NodeContext;
  manager: SecurityManager;
  config: ClusterConfig;
  provider: 'kms' | 'aesgcm';
  store: MembershipStore;
  lease?: string;
  cp?: ControlPlane;
  collected: Array<NodeKeys<EncryptionKeys>>;
  plan?: ClusterRotationPlan;
  /** Nodes the stage step sent the new key to (answered or not): the rollback cleans them all. */
  stagedOn: KeyHolder[];
  activatedOn: string[];
  notActivated: Array<{ holder: KeyHolder; error?: Error }>;
  /** Nodes where a rollback could not remove the staged key (harmless: it never encrypted anything). */
  leftStaged: string[];
}

function rotationSteps(): Array<Step<RotationContext>> {
  return [
    {
      name: 'lock',
      title: 'Take the cluster lock (no control-plane join meanwhile)',
      run: async (ctx) => {
        ctx.lease = await takeLock(ctx.store, `${LOCK_HOLDER_PREFIX}${ctx.d.requireControlPlane().name}`);
      },
      rollback: async (ctx) => releaseLock(ctx),
    },
    {
      name: 'collect',
      title: "Read every control-plane node's encryption keys",
      run: async (ctx) => {
        ctx.cp = await controlPlane(ctx.d, ctx.manager, ctx.provider);
        const read = await eachNode([ctx.cp.self, ...ctx.cp.peers], (h) => h.keys());
        const failed = read.filter((r) => r.error);
        if (failed.length > 0) {
          const names = failed.map((f) => f.holder.name);
          throw new ApiError(
            503,
            `cannot read the encryption keys of control-plane node(s) ${describeFailures(failed)}. Nothing was changed. ` +
              `Every control-plane node must take part in a key rotation: start k8sd on ${names.join(', ')} ` +
              `(or remove a node that is gone for good with "k8s remove-node ${names[0]}"), then rotate again`,
          );
        }
        ctx.collected = read.map((r) => ({ node: r.holder.name, keys: r.value! }));
      },
    },
    {
      name: 'plan',
      title: 'Plan the new key',
      run: async (ctx) => {
        ctx.plan = await asApiErrors(() => ctx.manager.planClusterRotation(ctx.config, ctx.collected));
      },
    },
    {
      name: 'stage',
      title: 'Give every control-plane node the new key, for decryption only',
      run: async (ctx) => {
        const { plan, cp } = ctx as Required<Pick<RotationContext, 'plan' | 'cp'>>;
        const holders = [cp.self, ...cp.peers];
        ctx.stagedOn = holders;
        const failed = (await eachNode(holders, (h) => h.stage(plan.staged, plan.newKeyId))).filter((r) => r.error);
        if (failed.length > 0) {
          throw new ApiError(
            503,
            `control-plane node(s) ${describeFailures(failed)} did not take the new key; the rotation was undone and the previous key ` +
              `"${plan.previousKeyId}" stays in use. Check k8sd on ${failed.map((f) => f.holder.name).join(', ')}, then rotate again`,
          );
        }
      },
      rollback: async (ctx) => {
        const keyId = ctx.plan?.newKeyId;
        if (!keyId) return;
        const failed = (await eachNode(ctx.stagedOn, (h) => h.discard(keyId))).filter((r) => r.error);
        ctx.leftStaged = failed.map((f) => f.holder.name);
        if (failed.length > 0) {
          ctx.d.log.warn('could not remove the staged encryption key everywhere; it never encrypted anything, the next rotation drops it', { keyId, nodes: ctx.leftStaged });
          throw new Error(`the staged key ${keyId} is left on ${ctx.leftStaged.join(', ')}`);
        }
      },
    },
    {
      name: 'activate',
      title: 'Make the new key the write key on every control-plane node',
      run: async (ctx) => {
        const { plan, cp } = ctx as Required<Pick<RotationContext, 'plan' | 'cp'>>;
        // This node first: if that fails, no node writes with the new key and the stage can be undone.
        await cp.self.activate(plan.active, plan.newKeyId);
        ctx.activatedOn.push(cp.self.name);
        // Past this point every node decrypts under both keys: a node that misses the activation
        // keeps writing with the previous key, which every node reads. Never undo the stage now.
        for (const r of await eachNode(cp.peers, (h) => h.activate(plan.active, plan.newKeyId))) {
          if (r.error) ctx.notActivated.push(r);
          else ctx.activatedOn.push(r.holder.name);
        }
      },
    },
  ];
}

async function releaseLock(ctx: RotationContext): Promise<void> {
  if (!ctx.lease) return;
  const lease = ctx.lease;
  ctx.lease = undefined;
  await ctx.store.unlock(lease);
}

/** Rotates the write key on every control-plane node: stage everywhere, then activate everywhere. */
export async function rotateClusterKey(d: NodeContext, manager: SecurityManager, config: ClusterConfig): Promise<RotationResult> {
  const provider = config.secretsEncryption;
  if (provider !== 'kms' && provider !== 'aesgcm') {
    throw new ApiError(409, 'security.secrets-encryption is "none"; enable kms or aesgcm before rotating keys');
  }
  const ctx: RotationContext = {
    d, manager, config, provider, store: membershipStore(d), collected: [], stagedOn: [], activatedOn: [], notActivated: [], leftStaged: [],
  };
  try {
    await runFlow('secrets-encryption rotate', rotationSteps(), ctx, (e) => {
      if (e.type === 'step') d.log.info(`secrets-encryption rotate: ${e.title}`, { step: e.step });
      else d.log.warn('secrets-encryption rotate: rolled back', { step: e.step, ...(e.error ? { error: e.error } : {}) });
    });
  } catch (error) {
    const cause = error instanceof FlowError ? error.cause : error;
    const left = ctx.leftStaged.length ? ` The unused staged key stays on ${ctx.leftStaged.join(', ')} until the next rotation removes it.` : '';
    throw new ApiError(cause instanceof ApiError ? cause.status : 500, `${(error as Error).message}${left}`);
  } finally {
    await releaseLock(ctx);
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
async function requireControlPlaneCaller(d: NodeContext, req: Request): Promise<void> {
  const caller = req.peerFingerprint
    ? (await membershipStore(d).members()).find((r) => fingerprintOf(d.crypto, r.clusterCert) === req.peerFingerprint)
    : undefined;
  if (!caller || caller.role !== 'control-plane' || caller.joining) {
    throw new ApiError(403, 'only a control-plane member of this cluster may read or change its encryption keys');
  }
}

function keyChangeBody(req: Request): { keys: EncryptionKeys; keyId: string } {
  return parseRequest(peer.encryptionKeysStage, req.body);
}

/** The routes other control-plane nodes call during a rotation (cluster API, mTLS). */
export function secretsRotationClusterRoutes(d: NodeContext, manager: SecurityManager): Route[] {
  const self = (): KeyHolder => localHolder(d, manager, d.requireControlPlane().name);
  const guarded = (handler: (req: Request) => Promise<unknown>) => async (req: Request): Promise<unknown> => {
    await requireControlPlaneCaller(d, req);
    return handler(req);
  };
  return [
    { ...at(peer.encryptionKeysGet), handler: guarded(async () => ({ keys: await self().keys() })) },
    { ...at(peer.encryptionKeysSummary), handler: guarded(async () => self().summary()) },
    {
      ...at(peer.encryptionKeysStage),
      handler: guarded(async (req) => {
        const { keys, keyId } = keyChangeBody(req);
        return self().stage(keys, keyId);
      }),
    },
    {
      ...at(peer.encryptionKeysActivate),
      handler: guarded(async (req) => {
        const { keys, keyId } = keyChangeBody(req);
        return self().activate(keys, keyId);
      }),
    },
    {
      ...at(peer.encryptionKeysDiscard),
      handler: guarded(async (req) => {
        const { keyId } = parseRequest(peer.encryptionKeysDiscard, req.body);
        return self().discard(keyId);
      }),
    },
  ];
}
