// The k8s charm's operational actions beyond kubeconfig and certificates: an etcd snapshot, and
// the checks to pass before an upgrade.
import type { Action } from '../../runtime/src/charm.js';
import type { Model } from '../../runtime/src/model.js';
import type { CharmDeps } from '../../k8s-common/src/node.js';
import { storeStackAndReport } from '../../k8s-common/src/upgrade.js';

const SNAPSHOT_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

export async function snapshotAction(action: Action, _model: Model, deps: CharmDeps): Promise<void> {
  const name = action.stringParam('name', '');
  if (name !== '' && !SNAPSHOT_NAME.test(name)) {
    await action.fail(`name '${name}' is not a snapshot name: lower-case letters, digits, '-' and '.', at most 63`);
    return;
  }
  try {
    await action.log(`saving an encrypted etcd snapshot${name ? ` named ${name}` : ''}`);
    const saved = await deps.k8s.snapshotSave(name || undefined);
    await action.setResults({ file: saved.file, revision: String(saved.revision), keys: String(saved.keys), bytes: String(saved.bytes) });
  } catch (error) {
    await action.fail(`snapshot failed (is this unit a control-plane node of the cluster?): ${describe(error)}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function items(list: unknown): Record<string, unknown>[] {
  return isRecord(list) && Array.isArray(list.items) ? list.items.filter(isRecord) : [];
}

function field(value: unknown, ...path: string[]): unknown {
  return path.reduce<unknown>((current, key) => (isRecord(current) ? current[key] : undefined), value);
}

function readyCondition(item: Record<string, unknown>): boolean {
  const conditions = field(item, 'status', 'conditions');
  return Array.isArray(conditions) && conditions.some((c) => isRecord(c) && c.type === 'Ready' && c.status === 'True');
}

/** What stands in the way of an upgrade: nodes not Ready, kube-system pods not running and ready. */
export function upgradeBlockers(nodes: unknown, systemPods: unknown): string[] {
  const problems: string[] = [];
  const nodeItems = items(nodes);
  if (nodeItems.length === 0) problems.push('no Kubernetes nodes are registered');
  for (const node of nodeItems) {
    if (!readyCondition(node)) problems.push(`node ${String(field(node, 'metadata', 'name'))} is not Ready`);
  }
  for (const pod of items(systemPods)) {
    const phase = field(pod, 'status', 'phase');
    if (phase === 'Succeeded') continue;
    if (phase !== 'Running' || !readyCondition(pod)) problems.push(`pod kube-system/${String(field(pod, 'metadata', 'name'))} is ${phase === 'Running' ? 'not ready' : String(phase)}`);
  }
  return problems;
}

/**
 * Canonical's pre-upgrade-check, run on the leader: the cluster answers, every node is Ready and
 * kube-system's pods run. Then it stores the upgrade stack: `juju refresh` (or attach-resource)
 * afterwards reaches the units one at a time (k8s-common/src/upgrade.ts).
 */
export async function preUpgradeCheckAction(action: Action, model: Model, deps: CharmDeps): Promise<void> {
  if (!(await model.isLeader())) {
    await action.fail('pre-upgrade-check runs on the leader: juju run k8s/leader pre-upgrade-check');
    return;
  }
  let problems: string[];
  let nodeCount = 0;
  try {
    const status = await deps.k8s.status();
    const [nodes, pods] = [await deps.k8s.kubectlJson(['get', 'nodes']), await deps.k8s.kubectlJson(['get', 'pods', '-n', 'kube-system'])];
    nodeCount = items(nodes).length;
    problems = [...(status.ready ? [] : ['k8s status is not ready']), ...upgradeBlockers(nodes, pods)];
  } catch (error) {
    await action.fail(`pre-upgrade-check could not read the cluster: ${describe(error)}`);
    return;
  }
  if (problems.length > 0) {
    await action.fail(`not ready to upgrade: ${problems.join('; ')}`);
    return;
  }
  await storeStackAndReport(action, model, { nodes: String(nodeCount) });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
