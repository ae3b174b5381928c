// etcd snapshots on a control-plane node: what `k8s snapshot save | list | restore` (routes/snapshots/)
// and the schedule (snapshots-module.ts, cluster config `etcd-snapshot.*`) do. Snapshots are sealed under the control-plane-only snapshot key
// (src/snapshots/key.ts) in the format of src/snapshots/format.ts.
//
// Restore validates everything first (the file authenticates under this node's key, the database
// passes etcdutl's hash check, the encryption keys it needs are compatible with this node's), and
// only then stops the control-plane services, swaps the data directory for one restored with
// etcdutl as a one-member cluster (k3s's cluster-reset), and starts them again; a failure after
// the stop puts the old data directory back and restarts the services on it.
import { randomBytes } from 'node:crypto';
import { verifyComponentChecksum } from '../services/binaries.js';
import { chmodSync, closeSync, openSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ServerResponse } from 'node:http';
import { execa } from 'execa';
import type { ModuleRegistry, NodeContext } from './node-context.js';
import type { PkiWrappingKeyFile } from '../pki/key-wrap.js';
import { ApiError, Request } from './http.js';
import { FlowError, runFlow, Step, StepEvent } from './flows/flow.js';
import { coreApi } from './kube.js';
import { crashWatch, k8sdEtcdTlsFiles, startKubernetesControlPlane, waitEtcdHealthy } from './controlplane.js';
import { EtcdClient } from '../datastore/etcd.js';
import { ClusterConfig, ClusterState, LocalNodeState } from '../datastore/state.js';
import { writeFileAtomic, writeFileAtomicStream } from '../host/files.js';
import { readArgsFile } from '../services/args.js';
import { encryptionPaths, kmsPaths, mergeKekRings, parseKekRing, readAesgcmKeys, ensureSecretDir, SECRET_FILE_MODE } from '../security/index.js';
import { SnapshotKeyStore } from '../snapshots/key.js';
import { openSnapshot, readSnapshotFileHeader, sealSnapshot, SnapshotFormatError, SnapshotManifest, SNAPSHOT_EXTENSION } from '../snapshots/format.js';
import { DEFAULT_SNAPSHOT_SETTINGS, SnapshotSettings } from '../snapshots/schedule.js';
import type { SecurityProvider } from './flows/bootstrap.js';

/**
 * What snapshots use of the node: the common context, plus what a restore needs to stop and
 * restart the datastore and the control plane (the CA-key wrapping key, the security provider,
 * the datastore reconnection and the clustered hooks).
 */
export interface SnapshotNode extends NodeContext, ModuleRegistry {
  readonly pkiKeys: PkiWrappingKeyFile;
  readonly security: SecurityProvider;
  /** Settles once the node's services have started (k8sd start-up). */
  readonly nodeServicesSettled: Promise<void>;
  /** The clustered hooks have run. */
  readonly isClustered: boolean;
  reconnectDatastore(): Promise<void>;
  clustered(node: LocalNodeState): Promise<void>;
}
import type { SecurityManager } from '../security/index.js';
import { local, type RestoreResult, type SnapshotInfo } from '../api/index.js';
import { parseRequest } from '../api/parse.js';

/** Name of scheduled snapshots; retention prunes these only (on-demand ones are the user's to delete). */
export const SCHEDULED_NAME = 'scheduled';
const NAME_PATTERN = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotError';
  }
}


export function snapshotSettingsOf(c: Pick<ClusterConfig, 'etcdSnapshot'>): SnapshotSettings {
  return c.etcdSnapshot ?? DEFAULT_SNAPSHOT_SETTINGS;
}

export function keyStore(d: SnapshotNode): SnapshotKeyStore {
  return new SnapshotKeyStore(d.crypto, d.layout.snapshotKeyFile);
}

/** etcd's args on this node: name, data dir, peer and client URLs. Refuses an external datastore. */
function managedEtcd(d: SnapshotNode): { name: string; dataDir: string; peerUrl: string; clientUrl: string } {
  const file = d.layout.args('etcd');
  if (!existsSync(file)) {
    throw new ApiError(409, 'this node does not run etcd (external datastore): snapshot and restore the external etcd with its own tools');
  }
  const a = readArgsFile(file);
  const clientUrl = (a['listen-client-urls'] ?? '').split(',')[0] ?? '';
  if (!a.name || !a['initial-advertise-peer-urls'] || !clientUrl) throw new SnapshotError(`${file} lacks --name, --initial-advertise-peer-urls or --listen-client-urls`);
  return { name: a.name, dataDir: a['data-dir'] ?? d.layout.etcdDataDir, peerUrl: a['initial-advertise-peer-urls'].split(',')[0]!, clientUrl };
}

function etcdTool(d: SnapshotNode, tool: 'etcdctl' | 'etcdutl', args: string[], timeoutMs = 600_000) {
  const binary = d.layout.componentBinary('etcd', tool);
  verifyComponentChecksum(d.layout, 'etcd', binary);
  return execa(binary, args, {
    reject: false,
    timeout: timeoutMs,
    env: { GODEBUG: d.layout.goDebug(process.env.GODEBUG ?? ''), ETCDCTL_API: '3' },
  });
}

/** A private staging directory (0700) beside the snapshots, for the plaintext database while it is sealed or restored. */
function stagingDir(d: SnapshotNode): string {
  mkdirSync(d.layout.snapshotsDir, { recursive: true, mode: 0o700 });
  chmodSync(d.layout.snapshotsDir, 0o700);
  return mkdtempSync(path.join(d.layout.snapshotsDir, '.staging-'));
}

/** Staging directories a killed k8sd left behind hold a plaintext database: they go at start-up. */
export function removeStaleStaging(d: SnapshotNode): void {
  const dir = d.layout.snapshotsDir;
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    if (!f.startsWith('.staging-')) continue;
    rmSync(path.join(dir, f), { recursive: true, force: true });
    d.log.warn('removed a snapshot staging directory left by an interrupted save or restore', { dir: path.join(dir, f) });
  }
}

async function dbStatus(d: SnapshotNode, dbFile: string): Promise<{ revision: number; totalKey: number }> {
  const r = await etcdTool(d, 'etcdutl', ['snapshot', 'status', dbFile, '--write-out', 'json']);
  if (r.exitCode !== 0) throw new SnapshotError(`etcdutl snapshot status refused the database: ${String(r.stderr).trim().split('\n').pop() ?? ''}`);
  const s = JSON.parse(String(r.stdout)) as { revision?: number; totalKey?: number };
  return { revision: s.revision ?? 0, totalKey: s.totalKey ?? 0 };
}

function timestamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Takes a snapshot of this node's etcd and writes it sealed (0600) to the snapshots directory. */
export async function saveSnapshot(d: SnapshotNode, requested?: string, scheduled = false): Promise<SnapshotInfo & { revision: number; keys: number }> {
  const node = d.requireControlPlane();
  if (d.lock.held) throw new ApiError(409, `a ${d.lock.held} is in progress on this node; take the snapshot when it has finished`);
  const name = scheduled ? SCHEDULED_NAME : (requested ?? 'on-demand');
  if (!NAME_PATTERN.test(name)) throw new ApiError(400, `--name "${name}" is not valid: use 1-63 lower-case letters, digits, "-" and "." (starting and ending with a letter or digit)`);
  if (!scheduled && name === SCHEDULED_NAME) throw new ApiError(400, `--name "${SCHEDULED_NAME}" is reserved for scheduled snapshots (retention deletes them); choose another name`);
  const etcd = managedEtcd(d);
  const config = await d.state?.getConfig();
  if (!config) throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status"');
  const key = await keyStore(d).require();
  const now = new Date();
  const staging = stagingDir(d);
  try {
    const dbFile = path.join(staging, 'db');
    const tls = k8sdEtcdTlsFiles(d.layout, true);
    const saved = await etcdTool(d, 'etcdctl', [`--endpoints=${etcd.clientUrl}`, `--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`, '--dial-timeout=10s', '--command-timeout=600s', 'snapshot', 'save', dbFile]);
    if (saved.exitCode !== 0) throw new SnapshotError(`etcdctl snapshot save failed: ${String(saved.stderr).trim().split('\n').pop() ?? ''}`);
    chmodSync(dbFile, SECRET_FILE_MODE);
    const status = await dbStatus(d, dbFile);
    const dbBytes = statSync(dbFile).size;
    const manifest: SnapshotManifest = {
      name,
      createdAt: now.toISOString(),
      node: node.name,
      etcdVersion: d.layout.componentVersion('etcd'),
      revision: status.revision,
      totalKeys: status.totalKey,
      dbBytes,
      secretsEncryption: config.secretsEncryption,
      ...encryptionKeysFor(d, config.secretsEncryption),
    };
    const file = path.join(d.layout.snapshotsDir, `${name}-${node.name}-${timestamp(now)}${SNAPSHOT_EXTENSION}`);
    if (existsSync(file)) throw new ApiError(409, `${file} already exists; wait a second or choose another --name`);
    let bytes = 0;
    await writeFileAtomicStream(file, SECRET_FILE_MODE, async (fd) => {
      bytes = await sealSnapshot(d.crypto, key, manifest, dbFile, fd);
    });
    d.log.info('etcd snapshot saved', { file, bytes, revision: status.revision, scheduled });
    return { file, name, bytes, createdAt: manifest.createdAt, scheduled, revision: status.revision, keys: status.totalKey };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The encryption-at-rest keys restored Secrets need: the KMS KEK ring, or the aesgcm configuration. */
function encryptionKeysFor(d: SnapshotNode, mode: ClusterConfig['secretsEncryption']): Pick<SnapshotManifest, 'kekRing' | 'aesgcmConfig'> {
  if (mode === 'kms') {
    const file = kmsPaths(d.layout).ringFile;
    if (!existsSync(file)) throw new SnapshotError(`the cluster uses KMS but this node has no KEK ring (${file}); take the snapshot on a control-plane node that runs the KMS plugin`);
    return { kekRing: parseKekRing(readFileSync(file, 'utf8'), file) };
  }
  if (mode === 'aesgcm') return { aesgcmConfig: readFileSync(encryptionPaths(d.layout).configFile, 'utf8') };
  return {};
}

/** Snapshots in this node's snapshots directory, newest first. */
export function listSnapshots(d: SnapshotNode): SnapshotInfo[] {
  const dir = d.layout.snapshotsDir;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(SNAPSHOT_EXTENSION))
    .map((f) => {
      const file = path.join(dir, f);
      const st = statSync(file);
      const name = f.replace(/-\d{8}T\d{6}Z\.k8s-snapshot$/, '');
      return { file, name, bytes: st.size, createdAt: st.mtime.toISOString(), scheduled: f.startsWith(`${SCHEDULED_NAME}-`) };
    })
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.file.localeCompare(a.file));
}

/** Deletes scheduled snapshots beyond the newest `retention`. Returns the files removed. */
export function pruneScheduled(d: SnapshotNode, retention: number): string[] {
  const old = listSnapshots(d).filter((s) => s.scheduled).slice(retention);
  for (const s of old) rmSync(s.file, { force: true });
  if (old.length) d.log.info('pruned scheduled etcd snapshots', { removed: old.length, retention });
  return old.map((s) => s.file);
}

/** A file argument: a path, or the file name of a snapshot in the snapshots directory. */
function resolveSnapshotFile(d: SnapshotNode, given: unknown): string {
  if (typeof given !== 'string' || !given.trim()) throw new ApiError(400, 'give the snapshot file to restore (see "k8s snapshot list")');
  const file = path.isAbsolute(given) ? given : path.join(d.layout.snapshotsDir, given);
  if (!existsSync(file) || !statSync(file).isFile()) throw new ApiError(400, `snapshot file ${file} does not exist; see "k8s snapshot list" for this node's snapshots`);
  return file;
}

/** Refuses a snapshot whose encryption keys conflict with this node's (a cluster whose keys differ). */
function checkEncryptionKeys(d: SnapshotNode, file: string, manifest: SnapshotManifest): void {
  if (manifest.kekRing) {
    const ringFile = kmsPaths(d.layout).ringFile;
    const snapshotRing = parseKekRing(JSON.stringify(manifest.kekRing), `${file} (its KMS KEK ring)`);
    if (existsSync(ringFile)) {
      try {
        mergeKekRings(parseKekRing(readFileSync(ringFile, 'utf8'), ringFile), snapshotRing);
      } catch (err) {
        throw new SnapshotError(`${file}: its KMS KEK ring conflicts with this node's (${(err as Error).message}); the cluster's keys differ — nothing was changed`);
      }
    }
  }
  if (manifest.aesgcmConfig !== undefined) {
    const local = readAesgcmKeys(encryptionPaths(d.layout).configFile);
    const staging = stagingDir(d);
    try {
      const theirs = path.join(staging, 'enc.yaml');
      writeFileAtomic(theirs, manifest.aesgcmConfig, SECRET_FILE_MODE);
      const missing = readAesgcmKeys(theirs).filter((k) => !local.some((l) => l.name === k.name && l.secret === k.secret));
      if (missing.length) {
        throw new SnapshotError(`${file} needs aesgcm key(s) ${missing.map((k) => k.name).join(', ')} that this node's encryption configuration lacks; the cluster's keys differ — nothing was changed`);
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
}

interface RestoreCtx {
  d: SnapshotNode;
  node: LocalNodeState;
  file: string;
  manifest: SnapshotManifest;
  dbFile: string;
  etcd: ReturnType<typeof managedEtcd>;
  restoredDir: string;
  previousDir: string;
  hadData: boolean;
  config?: ClusterConfig;
  /** Control-plane nodes removed from the restored cluster (they re-join). */
  droppedNodes: string[];
}

const CONTROL_PLANE_ORDER = ['kube-scheduler', 'kube-controller-manager', 'kube-apiserver'] as const;

async function startOnCurrentData(c: RestoreCtx): Promise<void> {
  const d = c.d;
  await d.host.services.start('etcd');
  const client = EtcdClient.fromFiles([c.etcd.clientUrl], k8sdEtcdTlsFiles(d.layout, true));
  try {
    await waitEtcdHealthy(client, 60_000, crashWatch(d.host, 'etcd', d.layout.log('etcd')));
    const config = await new ClusterState(client, d.pkiKeys).getConfig();
    if (config) {
      await d.security.beforeApiserver(config);
      await startKubernetesControlPlane(d.host, 180_000);
    }
  } finally {
    client.close();
  }
}

const restoreSteps: Step<RestoreCtx>[] = [
  {
    name: 'stop-services',
    title: 'Stopping the control-plane services and etcd',
    run: async ({ d }) => {
      for (const svc of CONTROL_PLANE_ORDER) await d.host.services.stop(svc);
      await d.host.services.stop('etcd');
      await d.security.stop();
    },
    rollback: async (c) => startOnCurrentData(c),
  },
  {
    name: 'restore-data',
    title: 'Restoring the etcd data directory from the snapshot (one-member cluster)',
    run: async (c) => {
      const r = await etcdTool(c.d, 'etcdutl', [
        'snapshot', 'restore', c.dbFile,
        `--data-dir=${c.restoredDir}`,
        `--name=${c.etcd.name}`,
        `--initial-cluster=${c.etcd.name}=${c.etcd.peerUrl}`,
        `--initial-advertise-peer-urls=${c.etcd.peerUrl}`,
        // A new token gives the restored cluster a new cluster ID and member ID: the old members,
        // still running until they re-join, are then refused instead of sending this member heartbeats
        // from the old raft log (etcd panics on "tocommit(n) is out of range").
        `--initial-cluster-token=k8s-restore-${randomBytes(8).toString('hex')}`,
      ]);
      if (r.exitCode !== 0) throw new SnapshotError(`etcdutl snapshot restore failed: ${String(r.stderr).trim().split('\n').pop() ?? ''}`);
      chmodSync(c.restoredDir, 0o700);
      if (c.hadData) renameSync(c.etcd.dataDir, c.previousDir);
      renameSync(c.restoredDir, c.etcd.dataDir);
    },
    rollback: async (c) => {
      rmSync(c.restoredDir, { recursive: true, force: true });
      if (c.hadData && existsSync(c.previousDir)) {
        rmSync(c.etcd.dataDir, { recursive: true, force: true });
        renameSync(c.previousDir, c.etcd.dataDir);
      }
    },
  },
  {
    name: 'start-etcd',
    title: 'Starting etcd on the restored data',
    run: async (c) => {
      const d = c.d;
      await d.host.services.start('etcd');
      const client = EtcdClient.fromFiles([c.etcd.clientUrl], k8sdEtcdTlsFiles(d.layout, true));
      try {
        await waitEtcdHealthy(client, 60_000, crashWatch(d.host, 'etcd', d.layout.log('etcd')));
        const members = await client.members();
        if (members.length !== 1) throw new SnapshotError(`the restored etcd has ${members.length} members, expected this node only`);
        const state = new ClusterState(client, d.pkiKeys);
        const config = await state.getConfig();
        if (!config) throw new SnapshotError('the restored datastore holds no cluster configuration; the snapshot is not of a k8s cluster');
        c.config = config;
        // cluster-reset: this node is the only control-plane member; the others re-join (workers stay).
        for (const n of await state.listNodes()) {
          if (n.role !== 'control-plane' || n.name === c.node.name) continue;
          await state.deleteNode(n.name);
          c.droppedNodes.push(n.name);
        }
      } finally {
        client.close();
      }
    },
    rollback: async ({ d }) => d.host.services.stop('etcd'),
  },
  {
    name: 'start-control-plane',
    title: 'Starting the KMS plugin and the Kubernetes control plane',
    run: async (c) => {
      // The snapshot's KEK ring is merged into this node's (checked compatible before anything stopped).
      const manager = (c.d.security as SecurityProvider & { manager?: SecurityManager }).manager;
      const ring = c.manifest.kekRing;
      if (manager && ring) await manager.beforeApiserver(c.config!, { kekRing: ring });
      else await c.d.security.beforeApiserver(c.config!);
      await startKubernetesControlPlane(c.d.host, 180_000);
      // Their Node objects go too, so that they can join again under the same names.
      const core = await coreApi(c.d.layout.kubeconfig('admin.conf'));
      for (const name of c.droppedNodes) {
        await core.deleteNode({ name }).catch((err: Error) => c.d.log.warn('could not delete the Node of a dropped control-plane node', { node: name, error: err.message }));
      }
    },
    rollback: async ({ d }) => {
      for (const svc of CONTROL_PLANE_ORDER) await d.host.services.stop(svc);
      await d.security.stop();
    },
  },
];

/** Restores a snapshot on this node. Validates fully before anything stops; streams progress. */

export async function restoreSnapshot(d: SnapshotNode, given: unknown, emit: (e: StepEvent | { type: 'info'; message: string }) => void): Promise<RestoreResult> {
  const started = Date.now();
  const node = d.requireControlPlane();
  const etcd = managedEtcd(d);
  // k8sd's own start-up may still be starting etcd and the control plane: never race it.
  await d.nodeServicesSettled;
  const file = resolveSnapshotFile(d, given);
  const key = await keyStore(d).require();
  readSnapshotFileHeader(file);
  const staging = stagingDir(d);
  try {
    // Decrypted in full (and every chunk authenticated) into the private staging directory first.
    const dbFile = path.join(staging, 'db');
    const out = openSync(dbFile, 'wx', SECRET_FILE_MODE);
    let manifest: SnapshotManifest;
    try {
      manifest = await openSnapshot(d.crypto, key, file, out);
    } finally {
      closeSync(out);
    }
    checkEncryptionKeys(d, file, manifest);
    await dbStatus(d, dbFile);
    emit({ type: 'info', message: `${file}: authenticated (taken ${manifest.createdAt} on ${manifest.node}, revision ${manifest.revision}, ${manifest.totalKeys} keys)` });
    const ts = timestamp(new Date());
    const ctx: RestoreCtx = {
      d,
      node,
      file,
      manifest,
      dbFile,
      etcd,
      restoredDir: path.join(staging, 'restored'),
      previousDir: `${etcd.dataDir}.pre-restore-${ts}`,
      hadData: existsSync(etcd.dataDir),
      droppedNodes: [],
    };
    await ensureSecretDir(path.dirname(etcd.dataDir));
    await runFlow('snapshot restore', restoreSteps, ctx, (e) => {
      d.log.info(e.type === 'step' ? `snapshot restore: ${e.title}` : `snapshot restore: rolled back ${e.step}`, e.type === 'rollback' && e.error ? { error: e.error } : {});
      emit(e);
    });
    await d.reconnectDatastore();
    if (!d.isClustered) await d.clustered(node);
    d.log.info('etcd snapshot restored', { file, revision: manifest.revision, previousDataDir: ctx.hadData ? ctx.previousDir : undefined });
    return {
      file,
      ...(ctx.hadData ? { previousDataDir: ctx.previousDir } : {}),
      revision: manifest.revision,
      droppedNodes: ctx.droppedNodes,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Snapshot errors that say what is wrong with the request or the file become 400s. */
export async function wrapErrors<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (err instanceof SnapshotFormatError || err instanceof SnapshotError || (err as Error).name === 'SnapshotKeyError' || (err as Error).name === 'KekRingError') {
      throw new ApiError(400, (err as Error).message);
    }
    throw err;
  }
}

/** `k8s snapshot restore`: checks, then streams the restore's steps (the first event starts the stream). */
export async function handleRestore(d: SnapshotNode, req: Request, res: ServerResponse): Promise<undefined> {
  d.lock.check('snapshot restore');
  const body = parseRequest(local.restoreSnapshot, req.body);
  // Everything that can be checked without stopping anything is checked before the stream starts,
  // so a refused file is a plain error reply.
  const release = d.lock.acquire('snapshot restore');
  let streaming = false;
  try {
    await wrapErrors(async () => {
      const emit = (e: StepEvent | { type: 'info'; message: string }): void => {
        if (!streaming) {
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          streaming = true;
        }
        res.write(JSON.stringify(e) + '\n');
      };
      try {
        const result = await restoreSnapshot(d, body.file, emit);
        emit({ type: 'info', message: 'restored' });
        res.write(JSON.stringify({ type: 'done', metadata: result }) + '\n');
      } catch (err) {
        if (!streaming) throw err;
        const msg = err instanceof FlowError ? `${err.message}; the previous data directory and services were put back` : (err as Error).message;
        d.log.error('snapshot restore failed', { error: msg });
        res.write(JSON.stringify({ type: 'error', error: msg }) + '\n');
      }
    });
  } finally {
    release();
    if (streaming) res.end();
  }
  return undefined;
}
