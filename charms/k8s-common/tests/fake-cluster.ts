// An in-memory Kubernetes cluster for charm tests: one FakeCluster shared by the units of a
// test, and one FakeMachine per unit standing in for its `snap`, `k8s` CLI and host.
import yaml from 'js-yaml';
import path from 'node:path';
import type { Host } from '../src/host.js';
import { withSnapFile, type SnapSource } from '../src/snap-source.js';
import type { CharmDeps } from '../src/node.js';
import { WorkloadCommandError, type ClusterStatus, type K8sCli, type K8sSnap, type NodeIdentity, type SnapInfo, type SnapshotResult } from '../src/workload.js';

export interface Member {
  readonly role: 'control-plane' | 'worker';
  readonly address: string;
}

export class FakeCluster {
  bootstrapDocument: Record<string, unknown> | undefined;
  readonly members = new Map<string, Member>();
  readonly tokens = new Map<string, { token: string; worker: boolean }>();
  readonly labels = new Map<string, Record<string, string>>();
  readonly clusterConfig: Record<string, string> = {};
  /** Every command run on any machine, as a CLI line. */
  readonly commands: string[] = [];
  ready = true;
  snapshots = 0;
  readonly notReadyNodes = new Set<string>();
  systemPods: Array<{ name: string; phase: string; ready: boolean }> = [{ name: 'coredns-abc', phase: 'Running', ready: true }];
  /** Joins to fail before one succeeds, with this message. */
  failJoins = 0;
  failJoinMessage = 'context deadline exceeded while contacting 10.0.0.1:6400';
  /** Manifests given to `kubectl apply`, parsed. */
  readonly applied: unknown[] = [];
  /** ServiceAccount tokens minted: namespace/name and lifetime. */
  readonly serviceAccountTokens: Array<{ account: string; durationSeconds: number; token: string }> = [];
  private tokenCounter = 0;

  machine(nodeName: string, options: { fips?: boolean; k8sdReady?: boolean } = {}): FakeMachine {
    return new FakeMachine(this, nodeName, options.fips ?? false, options.k8sdReady ?? true);
  }

  mintToken(name: string, worker: boolean): string {
    const existing = this.tokens.get(name);
    if (existing) return existing.token;
    this.tokenCounter += 1;
    const token = `${worker ? 'worker' : 'cp'}-token-${name}-${this.tokenCounter}`;
    this.tokens.set(name, { token, worker });
    return token;
  }
}

function fail(command: string, message: string): never {
  const [tool = 'k8s', ...args] = command.split(' ');
  throw new WorkloadCommandError(tool, args, 1, `Error: ${message}`);
}

export class FakeMachine implements K8sCli, K8sSnap, Host {
  snap: SnapInfo | undefined;
  kubeconfigServer: string | undefined;
  readonly refreshedCerts: Array<{ expiresIn: string; extraSans: readonly string[] }> = [];
  readonly sleeps: number[] = [];
  joinDocument: string | undefined;
  /** Makes `snap install` fail with this message. */
  installError: string | undefined;
  /** Where this machine's k8sd keeps metrics-token and cluster.crt (tests create the files). */
  k8sdStateDir = '/nonexistent/k8sd-state';
  pkiDir = '/nonexistent/pki';
  containerdHostsDir = '/nonexistent/containerd/hosts.d';
  /** The services `k8s status` lists for this node; undefined lists none (as Canonical k8s). */
  services: string[] | undefined;

  constructor(
    readonly cluster: FakeCluster,
    readonly name: string,
    public fips: boolean,
    public k8sdUp: boolean,
  ) {}

  /** The dependencies a charm gets on this machine. */
  deps(): CharmDeps {
    return {
      snap: this,
      k8s: this,
      host: this,
      removal: { attempts: 3, intervalMs: 10 },
      k8sdStateDir: this.k8sdStateDir,
      pkiDir: this.pkiDir,
      containerdHostsDir: this.containerdHostsDir,
    };
  }

  get member(): Member | undefined {
    return this.cluster.members.get(this.name);
  }

  private log(line: string): void {
    this.cluster.commands.push(`${this.name}: ${line}`);
  }

  private requireControlPlane(command: string): void {
    if (this.member?.role !== 'control-plane') fail(command, `${this.name} is not a control-plane node of a cluster`);
  }

  // Host
  nodeName(): string {
    return this.name;
  }

  async fipsEnabled(): Promise<boolean> {
    return this.fips;
  }

  async k8sdReady(): Promise<boolean> {
    return this.k8sdUp && this.snap !== undefined;
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
  }

  // K8sSnap
  async info(): Promise<SnapInfo | undefined> {
    return this.snap;
  }

  /** Opens the resource as the real snap does (a .snap, or the one .snap in a tarball) and logs which file it installs. */
  async install(source: SnapSource): Promise<void> {
    const line =
      source.kind === 'file'
        ? await withSnapFile(source.resource, async (file) => `snap install ${path.basename(file)} --dangerous --classic`)
        : `snap install k8s --classic --channel ${source.channel}`;
    this.log(line);
    if (this.installError) fail(line, this.installError);
    this.snap = { version: 'v1.36.0', held: false };
  }

  async hold(): Promise<void> {
    this.log('snap refresh --hold k8s');
    if (this.snap) this.snap = { ...this.snap, held: true };
  }

  async remove(): Promise<void> {
    this.log('snap remove k8s --purge');
    this.snap = undefined;
  }

  // K8sCli
  async bootstrap(configYaml: string, node: NodeIdentity): Promise<void> {
    const command = `k8s bootstrap --file - --name ${node.name} --address ${node.address}`;
    this.log(command);
    if (this.member) fail(command, 'node is already part of a cluster');
    if (this.cluster.bootstrapDocument) fail(command, 'the cluster already exists');
    this.cluster.bootstrapDocument = yaml.load(configYaml) as Record<string, unknown>;
    this.cluster.members.set(node.name, { role: 'control-plane', address: node.address });
  }

  async status(): Promise<ClusterStatus> {
    const command = 'k8s status --output-format json';
    this.log(command);
    if (!this.member) fail(command, 'The node is not part of a Kubernetes cluster');
    return {
      ready: this.cluster.ready,
      nodeName: this.name,
      role: this.member.role,
      members: [...this.cluster.members.entries()].filter(([, member]) => member.role === 'control-plane').map(([name]) => name),
      ...(this.services ? { services: this.services } : {}),
    };
  }

  async getJoinToken(name: string, worker: boolean, address?: string): Promise<string> {
    const command = `k8s get-join-token ${name}${worker ? ' --worker' : ''}${address ? ` --address ${address}` : ''}`;
    this.log(command);
    this.requireControlPlane(command);
    if (this.cluster.members.has(name)) fail(command, `a node named ${name} is already in the cluster`);
    return this.cluster.mintToken(name, worker);
  }

  async joinCluster(token: string, node: NodeIdentity, configYaml?: string): Promise<void> {
    const command = `k8s join-cluster <token> --name ${node.name} --address ${node.address}${configYaml ? ' --file -' : ''}`;
    this.log(command);
    this.joinDocument = configYaml;
    if (this.member) fail(command, 'node is already part of a cluster');
    if (this.cluster.failJoins > 0) {
      this.cluster.failJoins -= 1;
      fail(command, `${this.cluster.failJoinMessage} (token ${token})`);
    }
    const issued = this.cluster.tokens.get(node.name);
    if (!issued || issued.token !== token) fail(command, 'invalid join token');
    this.cluster.tokens.delete(node.name);
    this.cluster.members.set(node.name, { role: issued.worker ? 'worker' : 'control-plane', address: node.address });
  }

  async removeNode(name: string, force: boolean): Promise<void> {
    const command = `k8s remove-node ${name}${force ? ' --force' : ''}`;
    this.log(command);
    this.requireControlPlane(command);
    if (!this.cluster.members.delete(name)) fail(command, `node ${name} not found`);
  }

  async listJoinTokens(): Promise<string[]> {
    this.log('k8s list-join-tokens --output-format json');
    this.requireControlPlane('k8s list-join-tokens');
    return [...this.cluster.tokens.keys()];
  }

  async revokeJoinToken(name: string): Promise<void> {
    const command = `k8s revoke-join-token ${name}`;
    this.log(command);
    this.requireControlPlane(command);
    if (!this.cluster.tokens.delete(name)) fail(command, `no join token named ${name}`);
  }

  async kubeconfig(server?: string): Promise<string> {
    const command = `k8s config${server ? ` --server ${server}` : ''}`;
    this.log(command);
    this.requireControlPlane(command);
    const address = server ?? `https://${this.member?.address ?? '127.0.0.1'}:6443`;
    return `apiVersion: v1\nkind: Config\nclusters:\n- name: k8s\n  cluster:\n    server: ${address}\n`;
  }

  async refreshCerts(expiresIn: string, extraSans: readonly string[]): Promise<string> {
    const command = `k8s refresh-certs --expires-in ${expiresIn}${extraSans.map((san) => ` --extra-sans ${san}`).join('')}`;
    this.log(command);
    if (!this.member) fail(command, 'The node is not part of a Kubernetes cluster');
    this.refreshedCerts.push({ expiresIn, extraSans });
    return 'Certificates have been successfully refreshed.';
  }

  async setClusterConfig(values: Readonly<Record<string, string>>): Promise<void> {
    const command = `k8s set ${Object.entries(values).map(([key, value]) => `${key}=${value}`).join(' ')}`;
    this.log(command);
    this.requireControlPlane(command);
    Object.assign(this.cluster.clusterConfig, values);
  }

  async labelNode(name: string, set: Readonly<Record<string, string>>, remove: readonly string[]): Promise<void> {
    const changes = [...Object.entries(set).map(([key, value]) => `${key}=${value}`), ...remove.map((key) => `${key}-`)];
    const command = `k8s kubectl label node ${name} ${changes.join(' ')} --overwrite`;
    this.log(command);
    if (!this.cluster.members.has(name)) fail(command, `nodes "${name}" not found`);
    const labels = { ...(this.cluster.labels.get(name) ?? {}), ...set };
    for (const key of remove) delete labels[key];
    this.cluster.labels.set(name, labels);
  }

  async snapshotSave(name?: string): Promise<SnapshotResult> {
    const command = `k8s snapshot save${name ? ` --name ${name}` : ''} --output-format json`;
    this.log(command);
    this.requireControlPlane(command);
    this.cluster.snapshots += 1;
    return { file: `/var/snap/k8s/common/var/lib/k8sd/snapshots/${name ?? 'on-demand'}-${this.name}.k8s-snapshot`, revision: 42, keys: 300, bytes: 65536 };
  }

  /** nodes: every member, Ready unless listed in cluster.notReadyNodes; pods: cluster.systemPods. */
  async kubectlJson(args: readonly string[]): Promise<unknown> {
    const command = `k8s kubectl ${args.join(' ')} -o json`;
    this.log(command);
    this.requireControlPlane(command);
    if (args[0] === 'get' && args[1] === 'nodes') {
      return {
        items: [...this.cluster.members.keys()].map((node) => ({
          metadata: { name: node },
          status: { conditions: [{ type: 'Ready', status: this.cluster.notReadyNodes.has(node) ? 'False' : 'True' }] },
        })),
      };
    }
    if (args[0] === 'get' && args[1] === 'pods') {
      return { items: this.cluster.systemPods.map(({ name, phase, ready }) => ({ metadata: { name }, status: { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } })) };
    }
    return fail(command, `the fake cluster does not answer '${command}'`);
  }

  async kubectlApply(manifest: string): Promise<void> {
    this.log('k8s kubectl apply -f -');
    this.requireControlPlane('k8s kubectl apply -f -');
    this.cluster.applied.push(JSON.parse(manifest));
  }

  async createServiceAccountToken(namespace: string, account: string, durationSeconds: number): Promise<string> {
    const command = `k8s kubectl create token ${account} -n ${namespace} --duration ${durationSeconds}s`;
    this.log(command);
    this.requireControlPlane(command);
    const token = `sa-token-${this.cluster.serviceAccountTokens.length + 1}`;
    this.cluster.serviceAccountTokens.push({ account: `${namespace}/${account}`, durationSeconds, token });
    return token;
  }
}
