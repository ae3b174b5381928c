// Join tokens through relation data and Juju secrets.
// The leader mints a token per joining unit, puts it into an app-owned secret granted to
// that unit alone, and publishes the secret id in its app bag. The unit joins and reports
// `joined` or a `join-failure` for that attempt; the leader then cleans up or re-issues.
import type { Model, Relation, RelationBag } from '../../runtime/src/model.js';
import type { Reconciliation } from '../../runtime/src/reconcile.js';
import {
  APP_CLUSTER_NAME,
  UNIT_JOINED,
  UNIT_JOIN_FAILURE,
  UNIT_NODE_ADDRESS,
  UNIT_NODE_NAME,
  formatJoinFailure,
  joinSecretKey,
  nodeKey,
  parseJoinFailure,
  parseTokenContent,
  recordedUnits,
  tokenSecretContent,
  type TokenContent,
} from './protocol.js';
import type { K8sCli, NodeIdentity } from './workload.js';

export interface IssuerOptions {
  readonly model: Model;
  readonly k8s: K8sCli;
  readonly relation: Relation;
  readonly clusterName: string;
  /** Worker tokens on k8s-cluster, control-plane tokens on the peer relation. */
  readonly worker: boolean;
}

/** Revokes a join token if k8s still lists it; tokens are single-use, so it may be gone already. */
export async function revokeJoinTokenIfListed(k8s: K8sCli, nodeName: string): Promise<void> {
  if ((await k8s.listJoinTokens()).includes(nodeName)) await k8s.revokeJoinToken(nodeName);
}

/**
 * Leader side, one relation: issue, re-issue and clean up tokens, and remove the nodes of
 * units that have left. Idempotent: it acts only on what the relation data says is missing.
 */
export async function reconcileJoinTokens(options: IssuerOptions): Promise<void> {
  const { model, k8s, relation, clusterName, worker } = options;
  const app = await relation.localAppBag();
  app.set(APP_CLUSTER_NAME, clusterName);

  for (const unit of relation.units) {
    const bag = await relation.unitBag(unit);
    const node = bag.get(UNIT_NODE_NAME);
    if (!node) continue;
    const address = bag.get(UNIT_NODE_ADDRESS);
    const secretId = app.get(joinSecretKey(unit));
    const joined = bag.get(UNIT_JOINED);

    if (joined === clusterName) {
      app.set(nodeKey(unit), node);
      if (secretId) {
        await model.secrets.remove(secretId);
        app.delete(joinSecretKey(unit));
        await revokeJoinTokenIfListed(k8s, node);
        await model.log('INFO', `${unit} joined as ${node}; its join token is revoked`);
      }
      continue;
    }
    // Joined to another cluster: the unit reports that itself, and must be removed by hand.
    if (joined) continue;

    if (!secretId) {
      const token = await k8s.getJoinToken(node, worker, address);
      const id = await model.secrets.add(tokenSecretContent(token, 1), { description: `k8s join token for ${unit}` });
      await model.secrets.grant(id, relation, unit);
      app.set(joinSecretKey(unit), id);
      app.set(nodeKey(unit), node);
      await model.log('INFO', `issued a ${worker ? 'worker' : 'control-plane'} join token for ${unit} (${node})`);
      continue;
    }

    const failure = parseJoinFailure(bag.get(UNIT_JOIN_FAILURE));
    if (!failure) continue;
    const current = parseTokenContent(await model.secrets.get(secretId));
    const attempt = current?.attempt ?? 1;
    if (failure.attempt < attempt) continue; // already re-issued; the unit has not retried yet
    await revokeJoinTokenIfListed(k8s, node);
    const token = await k8s.getJoinToken(node, worker, address);
    await model.secrets.set(secretId, tokenSecretContent(token, attempt + 1));
    await model.log('WARNING', `${unit} failed to join (attempt ${failure.attempt}: ${failure.error}); issued attempt ${attempt + 1}`);
  }

  await forgetDepartedUnits(options, app);
}

/** Units recorded in the app bag that are no longer in the relation: revoke what they held, remove their node. */
async function forgetDepartedUnits({ model, k8s, relation }: IssuerOptions, app: RelationBag): Promise<void> {
  const present = new Set([...relation.units, model.unit.name]);
  for (const unit of recordedUnits(app.keys())) {
    if (present.has(unit)) continue;
    const node = app.get(nodeKey(unit));
    const secretId = app.get(joinSecretKey(unit));
    if (secretId) {
      // It never joined: only its token and secret remain.
      await model.secrets.remove(secretId);
      if (node) await revokeJoinTokenIfListed(k8s, node);
    } else if (node) {
      await k8s.removeNode(node, false);
      await model.log('INFO', `removed node ${node} of departed unit ${unit}`);
    }
    app.delete(joinSecretKey(unit));
    app.delete(nodeKey(unit));
  }
}

export interface JoinerOptions {
  readonly r: Reconciliation;
  readonly model: Model;
  readonly k8s: K8sCli;
  readonly relation: Relation;
  /** Where the leader writes: the peer app bag, or the remote (k8s) app bag for a worker. */
  readonly leaderBag: RelationBag;
  readonly node: NodeIdentity;
  /** Join configuration YAML (extra args, SANs), if any. */
  readonly joinConfig?: string;
  /** True when k8s already reports this node as part of a cluster. */
  readonly alreadyClustered: () => Promise<boolean>;
}

export const WAITING_FOR_TOKEN = 'Waiting for cluster token';

/**
 * Joining side: publish our node name, then join with the token the leader granted us.
 * Returns once this unit is joined; otherwise ends the reconcile with the reason.
 */
export async function joinWithToken(options: JoinerOptions): Promise<void> {
  // An explicit type lets TypeScript narrow after r.wait()/r.block(), which never return.
  const r: Reconciliation = options.r;
  const { model, k8s, relation, leaderBag, node } = options;
  const own = await relation.localUnitBag();
  own.set(UNIT_NODE_NAME, node.name);
  own.set(UNIT_NODE_ADDRESS, node.address);

  const clusterName = leaderBag.get(APP_CLUSTER_NAME);
  const joined = own.get(UNIT_JOINED);
  if (joined) {
    if (clusterName && joined !== clusterName) r.block('Cannot rejoin new cluster - remove unit');
    return;
  }
  if (!clusterName) r.wait(WAITING_FOR_TOKEN);

  const secretId = leaderBag.get(joinSecretKey(model.unit.name));
  if (!secretId) r.wait(WAITING_FOR_TOKEN);

  if (await options.alreadyClustered()) {
    // A previous join succeeded but its hook did not commit the relation data.
    own.set(UNIT_JOINED, clusterName);
    own.delete(UNIT_JOIN_FAILURE);
    return;
  }

  let content: TokenContent | undefined;
  try {
    content = parseTokenContent(await model.secrets.get(secretId, { refresh: true }));
  } catch (error) {
    await model.log('WARNING', `cannot read join token secret yet: ${error instanceof Error ? error.message : String(error)}`);
    r.wait(WAITING_FOR_TOKEN);
  }
  if (!content) r.wait(WAITING_FOR_TOKEN);

  const failure = parseJoinFailure(own.get(UNIT_JOIN_FAILURE));
  if (failure && failure.attempt >= content.attempt) r.wait(`Join attempt ${failure.attempt} failed; waiting for a new token`);

  await r.maintenance('Joining cluster');
  try {
    await k8s.joinCluster(content.token, node, options.joinConfig);
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error)).split(content.token).join('<token>');
    own.set(UNIT_JOIN_FAILURE, formatJoinFailure({ attempt: content.attempt, error: message }));
    await model.log('ERROR', `join attempt ${content.attempt} failed: ${message}`);
    r.wait(`Join attempt ${content.attempt} failed; waiting for a new token`);
  }
  own.set(UNIT_JOINED, clusterName);
  own.delete(UNIT_JOIN_FAILURE);
  await model.log('INFO', `joined cluster ${clusterName} as ${node.name}`);
}
