// Reconcile steps every k8s node runs, control plane or worker.
import type { HookEvent } from '../../runtime/src/charm.js';
import type { Config, Model } from '../../runtime/src/model.js';
import type { Reconciliation } from '../../runtime/src/reconcile.js';
import {
  commandOptionsFromEnv,
  ExecaK8sCli,
  ExecaK8sSnap,
  runsKubelet,
  type ClusterStatus,
  type K8sCli,
  type K8sSnap,
  type NodeIdentity,
} from './workload.js';
import { hostPathsFromEnv, MachineHost, type Host } from './host.js';
import { OptionValueError, parseNodeLabels } from './options.js';
import { k8sdStateDirFromEnv, pkiDirFromEnv } from './cos.js';
import { NEW_RESOURCE_WITHOUT_CHECK, type UpgradeTurn } from './upgrade.js';
import { containerdHostsDirFromEnv, writeRegistryHosts, type CustomRegistry } from './registries.js';
import {
  NO_SNAP_SOURCE_MESSAGE,
  SnapResourceError,
  resolveSnapSource,
  sourceRecord,
  type SnapSource,
} from './snap-source.js';

export interface CharmDeps {
  readonly snap: K8sSnap;
  readonly k8s: K8sCli;
  readonly host: Host;
  /** How long a leaving unit waits for the leader to remove its node before removing the snap. */
  readonly removal: { readonly attempts: number; readonly intervalMs: number };
  /** k8sd's state directory: the metrics token and cluster certificate for cos-agent. */
  readonly k8sdStateDir: string;
  /** The node's Kubernetes PKI directory: the CAs the cos-agent scrape jobs verify with (leader). */
  readonly pkiDir: string;
  /** containerd's registry hosts directory (its CRI config_path). */
  readonly containerdHostsDir: string;
}

export function productionDeps(env: NodeJS.ProcessEnv): CharmDeps {
  const commands = commandOptionsFromEnv(env);
  return {
    snap: new ExecaK8sSnap(commands),
    k8s: new ExecaK8sCli(commands),
    host: new MachineHost(hostPathsFromEnv(env)),
    removal: { attempts: 10, intervalMs: 3_000 },
    k8sdStateDir: k8sdStateDirFromEnv(env),
    pkiDir: pkiDirFromEnv(env),
    containerdHostsDir: containerdHostsDirFromEnv(env),
  };
}

const STATE_DYING = 'dying';
const STATE_NODE_LABELS = 'node-labels';

/**
 * Marks this unit as leaving when the event says so: its own departure from the cluster
 * relation, (workers) the loss of the cluster relation, or stop/remove.
 */
export async function noteDeparture(event: HookEvent, model: Model, clusterEndpoint: string, brokenMeansLeaving: boolean): Promise<void> {
  const relation = event.relation;
  const leaving =
    event.name === 'stop' ||
    event.name === 'remove' ||
    (relation?.endpoint === clusterEndpoint && relation.kind === 'departed' && relation.departingUnit === model.unit.name) ||
    (brokenMeansLeaving && relation?.endpoint === clusterEndpoint && relation.kind === 'broken');
  if (leaving) await model.state.set(STATE_DYING, 'true');
}

export async function isLeaving(model: Model): Promise<boolean> {
  return (await model.state.get(STATE_DYING)) === 'true';
}

/** Turns an invalid option into a Blocked status naming it. */
export function checkOptions<T>(r: Reconciliation, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof OptionValueError) r.block(error.message);
    throw error;
  }
}

const STATE_SNAP_SOURCE = 'snap-source';

/**
 * Installs this project's snap held (no automatic refreshes) and publishes its version: from the
 * snap-installation resource, else from the channel option; Blocked when there is neither. A new
 * resource (attach-resource) is installed over the running snap; a changed channel is not
 * followed (that is a refresh, which the operator runs unit by unit).
 */
export async function ensureSnap(r: Reconciliation, snap: K8sSnap, config: Config, turn: UpgradeTurn = { kind: 'none', guarded: false }): Promise<void> {
  const { model } = r;
  let info = await snap.info();
  const recorded = await model.state.get(STATE_SNAP_SOURCE);
  const source = await resolveSource(r, config, recorded);
  const newResource = info !== undefined && source?.kind === 'file' && recorded !== undefined && !recorded.endsWith(`:${source.sha256}`);
  // A running unit takes a new snap only in its turn of the upgrade flow (upgrade.ts).
  if (newResource && turn.kind !== 'granted' && (turn.kind === 'done' || turn.guarded)) r.block(NEW_RESOURCE_WITHOUT_CHECK);
  if (!info || newResource) {
    if (!source) r.block(NO_SNAP_SOURCE_MESSAGE);
    await r.maintenance(info ? 'Installing the new k8s snap resource' : 'Installing k8s snap');
    await r.step('install snap', { status: 'blocked', message: 'Failed to install snaps.' }, async () => {
      try {
        await snap.install(source);
      } catch (error) {
        if (error instanceof SnapResourceError) r.block(error.message);
        throw error;
      }
      await snap.hold();
    });
    await model.state.set(STATE_SNAP_SOURCE, sourceRecord(source));
    info = await snap.info();
  } else if (recorded === undefined && source) {
    await model.state.set(STATE_SNAP_SOURCE, sourceRecord(source));
  }
  if (info && !info.held) {
    await r.step('hold snap', { status: 'blocked', message: 'Failed to hold the k8s snap' }, () => snap.hold());
  }
  if (info?.version) await r.model.setWorkloadVersion(info.version);
}

async function resolveSource(r: Reconciliation, config: Config, recorded: string | undefined): Promise<SnapSource | undefined> {
  try {
    return await resolveSnapSource(r.model, config, recorded);
  } catch (error) {
    if (error instanceof OptionValueError) r.block(error.message);
    throw error;
  }
}

export async function checkFips(r: Reconciliation, config: Config, host: Host): Promise<void> {
  if (config.boolean('fips') && !(await host.fipsEnabled())) {
    r.block("fips=true but this machine is not FIPS-enabled; run 'pro enable fips-updates' and reboot");
  }
}

export async function waitForK8sd(r: Reconciliation, host: Host): Promise<void> {
  if (!(await host.k8sdReady())) r.wait('Waiting for k8sd');
}

/** This node's name and its address on the cluster binding (IPv4 preferred). */
export async function nodeIdentity(r: Reconciliation, host: Host, binding: string): Promise<NodeIdentity> {
  const network = await r.model.network(binding);
  const addresses = [...network.ingressAddresses, ...network.bindAddresses.flatMap((bind) => bind.addresses.map((a) => a.value))];
  const address = addresses.find((candidate) => /^\d+\.\d+\.\d+\.\d+$/.test(candidate)) ?? addresses.find((candidate) => candidate !== '');
  if (!address) r.wait(`Waiting for an address on the '${binding}' binding`);
  return { name: host.nodeName(), address };
}

/** True when `k8s status` answers, i.e. this node is part of a cluster. */
export async function isClustered(k8s: K8sCli): Promise<boolean> {
  try {
    await k8s.status();
    return true;
  } catch {
    return false;
  }
}

export interface LeaveOptions {
  readonly deps: CharmDeps;
  readonly nodeName: string;
  /** The leader of the control plane removes its own node; anyone else waits for the leader to do it. */
  readonly removeOwnNode: boolean;
}

/** Leaves the cluster, then removes the snap. Ends the reconcile. */
export async function leaveCluster(r: Reconciliation, { deps, nodeName, removeOwnNode }: LeaveOptions): Promise<never> {
  const { model } = r;
  const info = await deps.snap.info();
  if (!info) r.finish('Removed from the cluster');

  await r.maintenance('Leaving the cluster');
  if (removeOwnNode) {
    try {
      await deps.k8s.removeNode(nodeName, false);
    } catch (error) {
      await model.log('WARNING', `could not remove node ${nodeName}: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    let removed = false;
    for (let attempt = 0; attempt < deps.removal.attempts && !removed; attempt += 1) {
      removed = !(await stillMember(deps.k8s, nodeName));
      if (!removed) await deps.host.sleep(deps.removal.intervalMs);
    }
    if (!removed) await model.log('WARNING', `node ${nodeName} is still a cluster member; removing the snap anyway`);
  }
  await r.maintenance('Removing the k8s snap');
  await r.step('remove snap', { status: 'blocked', message: 'Failed to remove the k8s snap' }, () => deps.snap.remove());
  r.finish('Removed from the cluster');
}

/** A removed node's k8s no longer answers `status`; a control plane still answering must also be listed. */
async function stillMember(k8s: K8sCli, nodeName: string): Promise<boolean> {
  try {
    const status = await k8s.status();
    return status.role === 'worker' || status.members.includes(nodeName);
  } catch {
    return false;
  }
}

/**
 * Keeps the node's labels as configured: node-labels plus the Juju topology labels.
 * Labels this charm set earlier and no longer wants are removed.
 * A node whose `k8s status` shows it runs no kubelet has no Node object to label: nothing is
 * applied (and nothing recorded, so the labels go on once it has one); configured node-labels
 * are reported in the log.
 */
export async function reconcileNodeLabels(
  r: Reconciliation,
  k8s: K8sCli,
  nodeName: string,
  config: Config,
  charmName: string,
  status?: ClusterStatus,
): Promise<void> {
  const { model } = r;
  const wanted = checkOptions(r, () => parseNodeLabels('node-labels', config.string('node-labels')));
  if (status && !runsKubelet(status)) {
    if (Object.keys(wanted.set).length > 0 || wanted.remove.length > 0) {
      await model.log('WARNING', `node-labels not applied: ${nodeName} runs no kubelet, so it is not a Kubernetes node`);
    }
    return;
  }
  const desired: Record<string, string> = {
    ...wanted.set,
    'juju-application': model.unit.app,
    'juju-charm': charmName,
    ...(model.context.availabilityZone ? { 'topology.kubernetes.io/zone': model.context.availabilityZone } : {}),
  };
  for (const key of wanted.remove) delete desired[key];

  const applied = JSON.stringify({ set: desired, remove: [...wanted.remove].sort() });
  const previousText = await model.state.get(STATE_NODE_LABELS);
  if (previousText === applied) return;
  const previous = parseStringMap(previousText === undefined ? undefined : parseObjectField(previousText, 'set'));
  // Re-apply everything on a change: --overwrite makes setting idempotent.
  const remove = [...new Set([...wanted.remove, ...Object.keys(previous).filter((key) => !(key in desired))])];

  await r.step('label node', { status: 'waiting', message: `Waiting to label node ${nodeName}` }, () => k8s.labelNode(nodeName, desired, remove));
  await model.state.set(STATE_NODE_LABELS, applied);
}

function parseObjectField(text: string, field: string): string | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && field in value) return JSON.stringify((value as Record<string, unknown>)[field]);
  } catch {
    // An unreadable record means nothing was applied.
  }
  return undefined;
}

export function parseStringMap(text: string | undefined): Record<string, string> {
  if (!text) return {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  } catch {
    return {};
  }
}

/** YAML for the k8s CLI, loaded lazily so that hooks which send none start faster. */
export async function toYaml(document: Readonly<Record<string, unknown>>): Promise<string> {
  const yaml = await import('js-yaml');
  return yaml.dump(document, { lineWidth: -1, noRefs: true });
}

/** Writes the registries as containerd hosts.d entries; Blocked (not in error) when that fails. */
export async function reconcileRegistries(r: Reconciliation, hostsDir: string, registries: readonly CustomRegistry[]): Promise<void> {
  await r.step('containerd registries', { status: 'blocked', message: `Failed to write the containerd registry configuration under ${hostsDir}` }, () =>
    writeRegistryHosts(hostsDir, registries, r.model.state),
  );
}
