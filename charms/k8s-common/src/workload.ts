// The workload as the charms drive it: the k8s snap (through `snap`) and the cluster
// (through the `k8s` CLI). Interfaces first, so tests can swap in a fake cluster.
import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { withSnapFile, type SnapSource } from './snap-source.js';

export class WorkloadCommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
  ) {
    super(`'${[command, ...args].join(' ')}' failed (exit ${exitCode ?? 'unknown'}): ${stderr.trim() || 'no error output'}`);
    this.name = 'WorkloadCommandError';
  }
}

export class WorkloadOutputError extends Error {
  constructor(command: string, expected: string) {
    super(`'${command}' printed something other than ${expected}; check that the k8s snap matches this charm's revision`);
    this.name = 'WorkloadOutputError';
  }
}

export interface SnapInfo {
  readonly version: string;
  readonly held: boolean;
}

export interface K8sSnap {
  /** undefined when the snap is not installed. */
  info(): Promise<SnapInfo | undefined>;
  /**
   * From the resource: `snap install <file>.snap --dangerous --classic` (also over an installed
   * snap, for a new resource); from a channel: `snap install k8s --classic --channel <c>`.
   */
  install(source: SnapSource): Promise<void>;
  /** `snap refresh --hold k8s`: no automatic refreshes. */
  hold(): Promise<void>;
  /** `snap remove k8s --purge` */
  remove(): Promise<void>;
}

export interface ClusterStatus {
  readonly ready: boolean;
  readonly nodeName: string;
  readonly role: 'control-plane' | 'worker';
  /** Names of the cluster members k8s reports. */
  readonly members: readonly string[];
  /**
   * The services k8s reports running on this node ('services': [{name}…]); undefined when the
   * status does not list them (Canonical k8s' status has no such list).
   */
  readonly services?: readonly string[];
}

/**
 * False when k8s says this node runs no kubelet: it lists the node's services and kubelet is
 * not among them (a control-plane node of this k8s runs etcd and the control-plane services
 * only), so Kubernetes will never have a Node object for it. True when unknown.
 */
export function runsKubelet(status: ClusterStatus): boolean {
  return status.services === undefined || status.services.length === 0 || status.services.includes('kubelet');
}

export interface NodeIdentity {
  readonly name: string;
  readonly address: string;
}

export interface K8sCli {
  /** `k8s bootstrap --file - --name N --address A`, the YAML on stdin. */
  bootstrap(configYaml: string, node: NodeIdentity): Promise<void>;
  /** `k8s status --output-format json`; throws when this node is not part of a cluster (or k8sd is down). */
  status(): Promise<ClusterStatus>;
  /** `k8s get-join-token <name> [--worker] [--address A]`: A is the address the node joins with. */
  getJoinToken(name: string, worker: boolean, address?: string): Promise<string>;
  /** `k8s join-cluster --token-file F --name N --address A [--file -]` (the token never in argv) */
  joinCluster(token: string, node: NodeIdentity, configYaml?: string): Promise<void>;
  /** `k8s remove-node <name> [--force]` */
  removeNode(name: string, force: boolean): Promise<void>;
  /** `k8s list-join-tokens --output-format json`: names of outstanding tokens. */
  listJoinTokens(): Promise<string[]>;
  /** `k8s revoke-join-token <name>` */
  revokeJoinToken(name: string): Promise<void>;
  /** `k8s config [--server URL]`: the admin kubeconfig. */
  kubeconfig(server?: string): Promise<string>;
  /** `k8s refresh-certs --expires-in D [--extra-sans S]…` */
  refreshCerts(expiresIn: string, extraSans: readonly string[]): Promise<string>;
  /** `k8s set key=value…` (cluster configuration, e.g. 'dns.enabled=true'). */
  setClusterConfig(values: Readonly<Record<string, string>>): Promise<void>;
  /** `k8s snapshot save [--name N] --output-format json`: an encrypted etcd snapshot on this node. */
  snapshotSave(name?: string): Promise<SnapshotResult>;
  /** `k8s kubectl <args> -o json`, parsed. */
  kubectlJson(args: readonly string[]): Promise<unknown>;
  /** `k8s kubectl label node <name> k=v… k-… --overwrite` */
  labelNode(name: string, set: Readonly<Record<string, string>>, remove: readonly string[]): Promise<void>;
  /** `k8s kubectl apply -f -`, the manifest (YAML or JSON) on stdin. */
  kubectlApply(manifest: string): Promise<void>;
  /** `k8s kubectl create token <account> -n <namespace> --duration <s>s`: a bound ServiceAccount token (never logged). */
  createServiceAccountToken(namespace: string, account: string, durationSeconds: number): Promise<string>;
}

export interface SnapshotResult {
  readonly file: string;
  readonly revision: number;
  readonly keys: number;
  readonly bytes: number;
}

export interface CommandOptions {
  readonly snapCommand: string;
  readonly k8sCommand: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Which commands to run: K8S_CHARM_SNAP_CMD and K8S_CHARM_K8S_CMD override them (tests, or a dev snap). */
export function commandOptionsFromEnv(env: NodeJS.ProcessEnv): CommandOptions {
  return {
    snapCommand: env.K8S_CHARM_SNAP_CMD || 'snap',
    // The unit agent's PATH does not include /snap/bin.
    k8sCommand: env.K8S_CHARM_K8S_CMD || '/snap/bin/k8s',
    env,
  };
}

const MINUTE = 60_000;

interface RunOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
  /** Arguments shown as <redacted> in errors (tokens). */
  readonly secretArgs?: readonly string[];
}

async function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv | undefined, options: RunOptions = {}): Promise<string> {
  const result = await execa(command, args, {
    ...(env ? { env } : {}),
    input: options.input ?? '',
    reject: false,
    stripFinalNewline: false,
    timeout: options.timeoutMs ?? 5 * MINUTE,
  });
  const redact = (text: string): string =>
    (options.secretArgs ?? []).reduce((acc, secret) => (secret ? acc.split(secret).join('<redacted>') : acc), text);
  if (result.failed) {
    const detail = typeof result.stderr === 'string' && result.stderr.trim() !== '' ? result.stderr : (result.shortMessage ?? '');
    throw new WorkloadCommandError(
      command,
      args.map((arg) => redact(arg)),
      result.exitCode,
      redact(detail),
    );
  }
  return typeof result.stdout === 'string' ? result.stdout : '';
}

export class ExecaK8sSnap implements K8sSnap {
  constructor(private readonly options: CommandOptions) {}

  async info(): Promise<SnapInfo | undefined> {
    let output: string;
    try {
      output = await run(this.options.snapCommand, ['list', 'k8s'], this.options.env);
    } catch (error) {
      if (error instanceof WorkloadCommandError) return undefined;
      throw error;
    }
    return parseSnapList(output);
  }

  async install(source: SnapSource): Promise<void> {
    const install = (args: readonly string[]): Promise<string> =>
      run(this.options.snapCommand, ['install', ...args], this.options.env, { timeoutMs: 15 * MINUTE });
    if (source.kind === 'file') await withSnapFile(source.resource, (file) => install([file, '--dangerous', '--classic']));
    else await install(['k8s', '--classic', '--channel', source.channel]);
  }

  async hold(): Promise<void> {
    await run(this.options.snapCommand, ['refresh', '--hold', 'k8s'], this.options.env);
  }

  async remove(): Promise<void> {
    await run(this.options.snapCommand, ['remove', 'k8s', '--purge'], this.options.env, { timeoutMs: 15 * MINUTE });
  }
}

/** Parses `snap list k8s`: a header, then 'Name Version Rev Tracking Publisher Notes'. */
export function parseSnapList(output: string): SnapInfo | undefined {
  const row = output
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[0] === 'k8s');
  if (!row || row[1] === undefined) return undefined;
  const notes = row[5] ?? '';
  return { version: row[1], held: notes.split(',').includes('held') };
}

export class ExecaK8sCli implements K8sCli {
  constructor(private readonly options: CommandOptions) {}

  private k8s(args: readonly string[], options: RunOptions = {}): Promise<string> {
    return run(this.options.k8sCommand, args, this.options.env, options);
  }

  async bootstrap(configYaml: string, node: NodeIdentity): Promise<void> {
    await this.k8s(['bootstrap', '--file', '-', '--name', node.name, '--address', node.address], {
      input: configYaml,
      timeoutMs: 15 * MINUTE,
    });
  }

  async status(): Promise<ClusterStatus> {
    const output = await this.k8s(['status', '--output-format', 'json'], { timeoutMs: MINUTE });
    return parseClusterStatus(output);
  }

  async getJoinToken(name: string, worker: boolean, address?: string): Promise<string> {
    const output = await this.k8s(['get-join-token', name, ...(worker ? ['--worker'] : []), ...(address ? ['--address', address] : [])]);
    const token = output.trim().split('\n').pop()?.trim() ?? '';
    if (token === '') throw new WorkloadOutputError('k8s get-join-token', 'a join token');
    return token;
  }

  /**
   * The token never goes on the command line (any local user can read /proc/<pid>/cmdline): it is
   * written to a 0600 file in a fresh 0700 directory, passed with --token-file and removed after
   * the join, whatever its outcome. stdin stays free for the join file.
   */
  async joinCluster(token: string, node: NodeIdentity, configYaml?: string): Promise<void> {
    const dir = await mkdtemp(path.join(tmpdir(), 'k8s-join-'));
    const tokenFile = path.join(dir, 'token');
    try {
      await writeFile(tokenFile, `${token}\n`, { mode: 0o600, flag: 'wx' });
      const args = ['join-cluster', '--token-file', tokenFile, '--name', node.name, '--address', node.address, ...(configYaml ? ['--file', '-'] : [])];
      await this.k8s(args, { ...(configYaml ? { input: configYaml } : {}), timeoutMs: 15 * MINUTE, secretArgs: [token] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async removeNode(name: string, force: boolean): Promise<void> {
    await this.k8s(['remove-node', name, ...(force ? ['--force'] : [])], { timeoutMs: 10 * MINUTE });
  }

  async listJoinTokens(): Promise<string[]> {
    return parseJoinTokenNames(await this.k8s(['list-join-tokens', '--output-format', 'json']));
  }

  async revokeJoinToken(name: string): Promise<void> {
    await this.k8s(['revoke-join-token', name]);
  }

  async kubeconfig(server?: string): Promise<string> {
    return this.k8s(['config', ...(server ? ['--server', server] : [])]);
  }

  async refreshCerts(expiresIn: string, extraSans: readonly string[]): Promise<string> {
    const sans = extraSans.flatMap((san) => ['--extra-sans', san]);
    return this.k8s(['refresh-certs', '--expires-in', expiresIn, ...sans], { timeoutMs: 10 * MINUTE });
  }

  async setClusterConfig(values: Readonly<Record<string, string>>): Promise<void> {
    const pairs = Object.entries(values).map(([key, value]) => `${key}=${value}`);
    if (pairs.length > 0) await this.k8s(['set', ...pairs]);
  }

  async snapshotSave(name?: string): Promise<SnapshotResult> {
    const output = await this.k8s(['snapshot', 'save', ...(name ? ['--name', name] : []), '--output-format', 'json'], { timeoutMs: 15 * MINUTE });
    const value = parseJson(output, 'k8s snapshot save --output-format json', 'JSON');
    if (!isRecord(value) || typeof value.file !== 'string') throw new WorkloadOutputError('k8s snapshot save', "a JSON object with 'file'");
    const number = (field: unknown): number => (typeof field === 'number' ? field : 0);
    return { file: value.file, revision: number(value.revision), keys: number(value.keys), bytes: number(value.bytes) };
  }

  async kubectlJson(args: readonly string[]): Promise<unknown> {
    return parseJson(await this.k8s(['kubectl', ...args, '-o', 'json'], { timeoutMs: 2 * MINUTE }), `k8s kubectl ${args.join(' ')} -o json`, 'JSON');
  }

  async labelNode(name: string, set: Readonly<Record<string, string>>, remove: readonly string[]): Promise<void> {
    const changes = [...Object.entries(set).map(([key, value]) => `${key}=${value}`), ...remove.map((key) => `${key}-`)];
    if (changes.length > 0) await this.k8s(['kubectl', 'label', 'node', name, ...changes, '--overwrite']);
  }

  async kubectlApply(manifest: string): Promise<void> {
    await this.k8s(['kubectl', 'apply', '-f', '-'], { input: manifest, timeoutMs: 2 * MINUTE });
  }

  async createServiceAccountToken(namespace: string, account: string, durationSeconds: number): Promise<string> {
    const output = await this.k8s(['kubectl', 'create', 'token', account, '-n', namespace, '--duration', `${durationSeconds}s`], { timeoutMs: 2 * MINUTE });
    const token = output.trim();
    if (!/^[A-Za-z0-9_.-]+$/.test(token)) throw new WorkloadOutputError('k8s kubectl create token', 'a token');
    return token;
  }
}

function parseJson(text: string, command: string, expected: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new WorkloadOutputError(command, expected);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function memberName(member: unknown): string | undefined {
  if (typeof member === 'string') return member;
  if (isRecord(member)) {
    const name = member.name ?? member['node-name'];
    if (typeof name === 'string') return name;
  }
  return undefined;
}

/** `k8s status` answered, but this node is not part of a cluster (role 'none'). */
export class NodeNotClusteredError extends Error {
  constructor() {
    super('k8s status reports that this node is not part of a cluster');
    this.name = 'NodeNotClusteredError';
  }
}

/**
 * Reads `k8s status --output-format json`: {ready, node-name, role, members | datastore.members, services?}.
 * Throws NodeNotClusteredError for role 'none'.
 */
export function parseClusterStatus(output: string): ClusterStatus {
  const value = parseJson(output, 'k8s status --output-format json', 'JSON');
  if (!isRecord(value) || typeof value.ready !== 'boolean') {
    throw new WorkloadOutputError('k8s status --output-format json', "a JSON object with 'ready'");
  }
  if (value.role === 'none') throw new NodeNotClusteredError();
  const role = value.role === 'worker' ? 'worker' : 'control-plane';
  const datastore = value.datastore;
  const listed = Array.isArray(value.members) ? value.members : isRecord(datastore) && Array.isArray(datastore.members) ? datastore.members : [];
  const members = listed.map(memberName).filter((name): name is string => name !== undefined);
  const services = Array.isArray(value.services) ? value.services.map(memberName).filter((name): name is string => name !== undefined) : undefined;
  return {
    ready: value.ready,
    nodeName: typeof value['node-name'] === 'string' ? value['node-name'] : '',
    role,
    members,
    ...(services ? { services } : {}),
  };
}

/** Accepts a list of names, a list of {name}, or {tokens: […]}. */
export function parseJoinTokenNames(output: string): string[] {
  if (output.trim() === '') return [];
  const value = parseJson(output, 'k8s list-join-tokens --output-format json', 'JSON');
  const list = Array.isArray(value) ? value : isRecord(value) && Array.isArray(value.tokens) ? value.tokens : undefined;
  if (!list) throw new WorkloadOutputError('k8s list-join-tokens --output-format json', 'a JSON list of tokens');
  return list.map(memberName).filter((name): name is string => name !== undefined);
}
