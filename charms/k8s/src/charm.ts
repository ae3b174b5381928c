// The k8s charm: a Canonical Kubernetes control-plane node per unit.
// Every hook runs the same idempotent reconcile; the leader bootstraps the cluster and
// lets the other control-plane units (peer `cluster`) and workers (`k8s-cluster`) in.
import type { Action, Charm, HookEvent } from '../../runtime/src/charm.js';
import type { Config, Model, Relation } from '../../runtime/src/model.js';
import { reconcile, type Reconciliation } from '../../runtime/src/reconcile.js';
import { joinWithToken, reconcileJoinTokens } from '../../k8s-common/src/join.js';
import {
  checkFips,
  checkOptions,
  ensureSnap,
  isClustered,
  isLeaving,
  leaveCluster,
  noteDeparture,
  nodeIdentity,
  parseStringMap,
  reconcileNodeLabels,
  reconcileRegistries,
  toYaml,
  waitForK8sd,
  type CharmDeps,
} from '../../k8s-common/src/node.js';
import { OptionValueError } from '../../k8s-common/src/options.js';
import {
  APP_BOOTSTRAP_CONFIG,
  APP_CLUSTER_NAME,
  APP_DATASTORE,
  APP_FEATURES,
  UNIT_JOINED,
  UNIT_NODE_NAME,
  clusterNameFor,
  nodeKey,
} from '../../k8s-common/src/protocol.js';
import type { NodeIdentity } from '../../k8s-common/src/workload.js';
import { preUpgradeCheckAction, snapshotAction } from './actions.js';
import { provideScrapeCredentials, reconcileCosAgent } from '../../k8s-common/src/cos.js';
import { runsKubelet } from '../../k8s-common/src/workload.js';
import { featureSettings, flatSettings, settingChanges } from './cluster-config.js';
import { completeUpgradeTurn, noteUpgradeCharm, upgradeTurn } from '../../k8s-common/src/upgrade.js';
import { APP_CUSTOM_REGISTRIES, CONTAINERD_ENDPOINT, parseCustomRegistries, REGISTRIES_OPTION } from '../../k8s-common/src/registries.js';
import { LB_WAITING_MESSAGE, loadBalancerAddress, loadBalancerServer, reconcileLoadBalancer } from './load-balancer.js';
import { datastoreChoice, datastoreForBootstrap, datastoreViolation, ETCD_ENDPOINT } from './etcd.js';
import {
  bootstrapDocument,
  bootstrapRecord,
  controlPlaneJoinDocument,
  extraSans,
  immutabilityViolations,
  parseBootstrapRecord,
  validateControlPlaneOptions,
} from './bootstrap-config.js';

export const PEER_ENDPOINT = 'cluster';
export const WORKER_ENDPOINT = 'k8s-cluster';
export const API_SERVER_PORT = 6443;
const STATE_EXTRA_SANS = 'extra-sans';

export function k8sCharm(deps: CharmDeps): Charm {
  return {
    async onHook(event: HookEvent, model: Model): Promise<void> {
      if (event.name === 'secret-remove' && event.secret?.revision !== undefined) {
        // A consumer moved off a token revision: drop it (the owner is notified once per revision).
        await model.secrets.remove(event.secret.id, event.secret.revision).catch((error: unknown) =>
          model.log('WARNING', `could not remove ${event.secret?.id} revision ${event.secret?.revision}: ${String(error)}`),
        );
      }
      if (event.name === 'upgrade-charm') await noteUpgradeCharm(model);
      await noteDeparture(event, model, PEER_ENDPOINT, false);
      await reconcile(model, (r) => reconcileControlPlane(r, deps));
    },
    actions: {
      'get-kubeconfig': (action, model) => getKubeconfig(action, model, deps),
      'refresh-certs': (action, model) => refreshCerts(action, model, deps),
      snapshot: (action, model) => snapshotAction(action, model, deps),
      'pre-upgrade-check': (action, model) => preUpgradeCheckAction(action, model, deps),
    },
  };
}

async function reconcileControlPlane(r: Reconciliation, deps: CharmDeps): Promise<void> {
  const { model } = r;
  const nodeName = deps.host.nodeName();
  const leader = await model.isLeader();
  if (await isLeaving(model)) await leaveCluster(r, { deps, nodeName, removeOwnNode: leader });

  const config = await model.config();
  const turn = await upgradeTurn(r);
  await ensureSnap(r, deps.snap, config, turn);
  await checkFips(r, config, deps.host);
  checkOptions(r, () => validateControlPlaneOptions(config));

  const peer = await model.relation(PEER_ENDPOINT);
  if (!peer) r.wait(`Waiting for the '${PEER_ENDPOINT}' peer relation`);
  await waitForK8sd(r, deps.host);
  const node = await nodeIdentity(r, deps.host, PEER_ENDPOINT);
  const loadBalancer = await reconcileLoadBalancer(model, API_SERVER_PORT);
  if (loadBalancer.kind === 'failed') r.blocked(`external-load-balancer: ${loadBalancer.message}`);
  const lbAddress = loadBalancer.kind === 'ready' ? loadBalancer.address : undefined;

  const shared = await peer.localAppBag();
  const record = parseBootstrapRecord(shared.get(APP_BOOTSTRAP_CONFIG));
  const own = await peer.localUnitBag();
  own.set(UNIT_NODE_NAME, node.name);

  if (record) {
    for (const violation of immutabilityViolations(config, record)) r.blocked(violation);
    const datastore = datastoreViolation(shared.get(APP_DATASTORE) === 'external' ? 'external' : 'managed', (await model.relation(ETCD_ENDPOINT)) !== undefined);
    if (datastore) r.blocked(datastore);
  }

  // A node's API server certificate gets the load balancer's address when the node first starts.
  const needsCertificate = !own.get(UNIT_JOINED);
  if (needsCertificate && loadBalancer.kind === 'failed') r.block(`external-load-balancer: ${loadBalancer.message}`);
  if (needsCertificate && loadBalancer.kind === 'pending') r.wait(LB_WAITING_MESSAGE);
  if (loadBalancer.kind === 'pending') r.waiting(LB_WAITING_MESSAGE);

  if (leader && !record) {
    await bootstrap(r, deps, config, peer, node, lbAddress);
  } else if (!own.get(UNIT_JOINED)) {
    const joinDocument = checkOptions(r, () => controlPlaneJoinDocument(config, lbAddress));
    await joinWithToken({
      r,
      model,
      k8s: deps.k8s,
      relation: peer,
      leaderBag: shared,
      node,
      ...(joinDocument ? { joinConfig: await toYaml(joinDocument) } : {}),
      alreadyClustered: () => isClustered(deps.k8s),
    });
    await model.state.set(STATE_EXTRA_SANS, JSON.stringify(extraSans(config, lbAddress)));
  }

  if (leader) await leadCluster(r, deps, config, peer);

  await model.openPort({ protocol: 'tcp', port: API_SERVER_PORT });
  await publishAndWriteRegistries(r, deps, config, leader);
  await checkExtraSans(r, config, lbAddress);
  const status = await r.step('read cluster status', { status: 'waiting', message: 'Waiting for k8s to report status' }, () =>
    deps.k8s.status(),
  );
  await reconcileCosAgent(r, node, deps.k8sdStateDir, { controlPlane: true, kubelet: runsKubelet(status) }, { bag: shared, own });
  if (!status.ready) r.waiting(`Node ${node.name} is not ready`);
  await completeUpgradeTurn(model, turn, status.ready);
  await reconcileNodeLabels(r, deps.k8s, node.name, config, 'k8s', status);
}

/** Leader, first time: bootstrap (or adopt a bootstrap whose hook did not commit) and record it. */
async function bootstrap(r: Reconciliation, deps: CharmDeps, config: Config, peer: Relation, node: NodeIdentity, lbAddress: string | undefined): Promise<void> {
  const { model } = r;
  const choice = checkOptions(r, () => datastoreChoice(config));
  const externalEtcd = await datastoreForBootstrap(r, choice, await model.relation(ETCD_ENDPOINT));
  const document = checkOptions(r, () => bootstrapDocument(config, externalEtcd, lbAddress));
  if (!(await isClustered(deps.k8s))) {
    await r.maintenance('Bootstrapping Cluster');
    const yaml = await toYaml(document);
    await r.step('bootstrap', { status: 'waiting', message: 'Bootstrap failed; retrying on the next hook' }, () =>
      deps.k8s.bootstrap(yaml, node),
    );
    await model.log('INFO', `bootstrapped the cluster on ${node.name} (${node.address})`);
  }
  const clusterName = clusterNameFor(model.unit.app, model.context.modelUuid);
  const shared = await peer.localAppBag();
  shared.set(APP_BOOTSTRAP_CONFIG, JSON.stringify(bootstrapRecord(config)));
  shared.set(APP_DATASTORE, externalEtcd ? 'external' : 'managed');
  shared.set(APP_FEATURES, JSON.stringify(flatSettings(featureSettings(config))));
  shared.set(APP_CLUSTER_NAME, clusterName);
  shared.set(nodeKey(model.unit.name), node.name);
  (await peer.localUnitBag()).set(UNIT_JOINED, clusterName);
  await model.state.set(STATE_EXTRA_SANS, JSON.stringify(extraSans(config, lbAddress)));
}

/** Leader, every time: feature toggles, tokens for joining units, removal of departed ones. */
async function leadCluster(r: Reconciliation, deps: CharmDeps, config: Config, peer: Relation): Promise<void> {
  const { model } = r;
  const shared = await peer.localAppBag();
  const own = await peer.localUnitBag();
  const clusterName = shared.get(APP_CLUSTER_NAME) ?? clusterNameFor(model.unit.app, model.context.modelUuid);
  // A leader that has not joined yet cannot mint tokens; it waits for its own (issued by the previous leader).
  if (own.get(UNIT_JOINED) !== clusterName) r.wait('Waiting for cluster token');
  shared.set(nodeKey(model.unit.name), deps.host.nodeName());

  const wanted = flatSettings(checkOptions(r, () => featureSettings(config)));
  const changes = settingChanges(wanted, parseStringMap(shared.get(APP_FEATURES)));
  if (Object.keys(changes).length > 0) {
    await r.step('update features', { status: 'waiting', message: 'Waiting to update cluster features' }, () =>
      deps.k8s.setClusterConfig(changes),
    );
  }
  shared.set(APP_FEATURES, JSON.stringify(wanted));

  await r.step('control-plane join tokens', { status: 'waiting', message: 'Waiting to admit control-plane units' }, () =>
    reconcileJoinTokens({ model, k8s: deps.k8s, relation: peer, clusterName, worker: false }),
  );
  for (const relation of await model.relations(WORKER_ENDPOINT)) {
    await r.step(`worker join tokens on ${relation.id}`, { status: 'waiting', message: 'Waiting to admit workers' }, () =>
      reconcileJoinTokens({ model, k8s: deps.k8s, relation, clusterName, worker: true }),
    );
  }
  try {
    await provideScrapeCredentials(model, deps.k8s, deps.pkiDir, peer, await model.relations(WORKER_ENDPOINT));
  } catch (error) {
    // Scraping is not worth holding up the cluster for: the units wait for the token, the rest goes on.
    await model.log('ERROR', `could not provide the cos-agent scrape token: ${describe(error)}`);
    r.waiting('Waiting to mint the cos-agent scrape token');
  }
}

/** The leader shares containerd-custom-registries with workers; every unit writes them for its own containerd. */
async function publishAndWriteRegistries(r: Reconciliation, deps: CharmDeps, config: Config, leader: boolean): Promise<void> {
  const registries = checkOptions(r, () => parseCustomRegistries(REGISTRIES_OPTION, config.string(REGISTRIES_OPTION)));
  if (leader) {
    for (const relation of await r.model.relations(CONTAINERD_ENDPOINT)) {
      (await relation.localAppBag()).set(APP_CUSTOM_REGISTRIES, JSON.stringify(registries));
    }
  }
  await reconcileRegistries(r, deps.containerdHostsDir, registries);
}

/** New SANs need new certificates, which only the refresh-certs action makes. */
async function checkExtraSans(r: Reconciliation, config: Config, lbAddress: string | undefined): Promise<void> {
  const applied = await r.model.state.get(STATE_EXTRA_SANS);
  if (applied === undefined) return;
  const wanted = checkOptions(r, () => extraSans(config, lbAddress));
  const done = new Set(parseStringList(applied));
  const missing = wanted.filter((san) => !done.has(san));
  if (lbAddress !== undefined && missing.includes(lbAddress)) {
    r.blocked(`the external load balancer's address ${lbAddress} is not in the API server certificate; run the refresh-certs action to add it`);
  } else if (missing.length > 0) {
    r.blocked(`kube-apiserver-extra-sans changed; run the refresh-certs action to add ${missing.join(', ')}`);
  }
}

/** The server defaults to the external load balancer when it has answered, else k8s' own choice. */
async function getKubeconfig(action: Action, model: Model, deps: CharmDeps): Promise<void> {
  const given = action.stringParam('server', '');
  const lbAddress = given ? undefined : await loadBalancerAddress(model);
  const server = given || (lbAddress ? loadBalancerServer(lbAddress) : '');
  try {
    const kubeconfig = await deps.k8s.kubeconfig(server || undefined);
    await action.setResults({ kubeconfig });
  } catch (error) {
    await action.fail(`cannot get the kubeconfig (is this unit part of the cluster yet?): ${describe(error)}`);
  }
}

async function refreshCerts(action: Action, model: Model, deps: CharmDeps): Promise<void> {
  const expiresIn = action.stringParam('expires-in');
  if (!/^\d+(y|mo|d|h|m|s)$/.test(expiresIn) && !/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(expiresIn)) {
    await action.fail(`expires-in '${expiresIn}' is not a duration such as 1y, 6mo, 90d or 24h`);
    return;
  }
  let sans: string[];
  try {
    sans = extraSans(await model.config(), await loadBalancerAddress(model));
  } catch (error) {
    if (!(error instanceof OptionValueError)) throw error;
    await action.fail(error.message);
    return;
  }
  try {
    await action.log(`refreshing certificates (expires in ${expiresIn}${sans.length ? `, extra SANs ${sans.join(', ')}` : ''})`);
    const output = await deps.k8s.refreshCerts(expiresIn, sans);
    await model.state.set(STATE_EXTRA_SANS, JSON.stringify(sans));
    await action.setResults({ result: output.trim() || 'certificates refreshed', 'extra-sans': sans.join(',') });
  } catch (error) {
    await action.fail(`refresh-certs failed: ${describe(error)}`);
  }
}

function parseStringList(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
  } catch {
    return [];
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
