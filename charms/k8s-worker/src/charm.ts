// The k8s-worker charm: a Canonical Kubernetes worker node per unit. It relates to the
// control plane on `cluster` (limit 1) and joins with the token the k8s leader grants it.
import type { Action, Charm, HookEvent } from '../../runtime/src/charm.js';
import type { Config, Model } from '../../runtime/src/model.js';
import { reconcile, type Reconciliation } from '../../runtime/src/reconcile.js';
import { joinWithToken } from '../../k8s-common/src/join.js';
import {
  checkFips,
  checkOptions,
  ensureSnap,
  isClustered,
  isLeaving,
  leaveCluster,
  noteDeparture,
  nodeIdentity,
  reconcileNodeLabels,
  reconcileRegistries,
  toYaml,
  waitForK8sd,
  type CharmDeps,
} from '../../k8s-common/src/node.js';
import { reconcileCosAgent } from '../../k8s-common/src/cos.js';
import { completeUpgradeTurn, noteUpgradeCharm, storeStackAndReport, upgradeTurn } from '../../k8s-common/src/upgrade.js';
import { APP_CUSTOM_REGISTRIES, CONTAINERD_ENDPOINT, parseCustomRegistries, type CustomRegistry } from '../../k8s-common/src/registries.js';
import { nodeDocument, parseNodeLabels } from '../../k8s-common/src/options.js';

export const CLUSTER_ENDPOINT = 'cluster';

/** The registries the k8s leader shares on `containerd`; none without the relation. */
async function relatedRegistries(r: Reconciliation): Promise<CustomRegistry[]> {
  const relation = await r.model.relation(CONTAINERD_ENDPOINT);
  if (!relation) return [];
  const shared = (await relation.remoteAppBag()).get(APP_CUSTOM_REGISTRIES) ?? '[]';
  return checkOptions(r, () => parseCustomRegistries(`containerd relation ${APP_CUSTOM_REGISTRIES}`, shared));
}

export function k8sWorkerCharm(deps: CharmDeps): Charm {
  return {
    async onHook(event: HookEvent, model: Model): Promise<void> {
      // Losing the control plane (relation broken) means leaving the cluster too.
      if (event.name === 'upgrade-charm') await noteUpgradeCharm(model);
      await noteDeparture(event, model, CLUSTER_ENDPOINT, true);
      await reconcile(model, (r) => reconcileWorker(r, deps));
    },
    actions: {
      'pre-upgrade-check': (action, model) => workerPreUpgradeCheck(action, model, deps),
    },
  };
}

/** The document for `k8s join-cluster --file -` on a worker; undefined when empty. */
export function workerJoinDocument(config: Config): Record<string, unknown> | undefined {
  const document = nodeDocument(config, 'worker');
  return Object.keys(document).length > 0 ? document : undefined;
}

async function reconcileWorker(r: Reconciliation, deps: CharmDeps): Promise<void> {
  const { model } = r;
  const nodeName = deps.host.nodeName();
  if (await isLeaving(model)) await leaveCluster(r, { deps, nodeName, removeOwnNode: false });

  const config = await model.config();
  const turn = await upgradeTurn(r);
  await ensureSnap(r, deps.snap, config, turn);
  await checkFips(r, config, deps.host);
  const joinDocument = checkOptions(r, () => {
    parseNodeLabels('node-labels', config.string('node-labels'));
    return workerJoinDocument(config);
  });

  const relation = await model.relation(CLUSTER_ENDPOINT);
  if (!relation) r.block('Missing cluster integration');
  await waitForK8sd(r, deps.host);
  const node = await nodeIdentity(r, deps.host, CLUSTER_ENDPOINT);

  await joinWithToken({
    r,
    model,
    k8s: deps.k8s,
    relation,
    leaderBag: await relation.remoteAppBag(),
    node,
    ...(joinDocument ? { joinConfig: await toYaml(joinDocument) } : {}),
    alreadyClustered: () => isClustered(deps.k8s),
  });
  await reconcileCosAgent(r, node, deps.k8sdStateDir, { controlPlane: false, kubelet: true }, { bag: await relation.remoteAppBag(), own: await relation.localUnitBag() });
  await reconcileRegistries(r, deps.containerdHostsDir, await relatedRegistries(r));
  await reconcileNodeLabels(r, deps.k8s, node.name, config, 'k8s-worker');
  if (turn.kind === 'granted') {
    const ready = await deps.k8s.status().then((status) => status.ready, () => false);
    if (!ready) r.waiting(`Node ${node.name} is not ready`);
    await completeUpgradeTurn(model, turn, ready);
  }
}

/** On the worker leader: this node answers as part of the cluster; then the upgrade order is stored. */
async function workerPreUpgradeCheck(action: Action, model: Model, deps: CharmDeps): Promise<void> {
  if (!(await model.isLeader())) {
    await action.fail('pre-upgrade-check runs on the leader: juju run k8s-worker/leader pre-upgrade-check');
    return;
  }
  const ready = await deps.k8s.status().then((status) => status.ready, () => false);
  if (!ready) {
    await action.fail('not ready to upgrade: this node is not part of a ready cluster');
    return;
  }
  await storeStackAndReport(action, model, {});
}
