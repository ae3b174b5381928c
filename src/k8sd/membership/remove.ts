// Removing nodes.
//   POST /1.0/k8sd/cluster/remove  {name, force}  local API, on a control-plane node
//   POST /1.0/k8sd/members/leave   cluster API: a control-plane node tells a removed node to clean up
// A control-plane removal first checks quorum (quorum.ts), then removes the etcd member, the
// node record and the Kubernetes Node, and finally asks the node to clean itself (best effort).
// A node removing itself answers the request first and tears down afterwards, so the CLI
// gets its answer instead of an EOF. A removed node keeps k8sd running, unclustered, and can
// join again under the same name.
import { existsSync, rmSync } from 'node:fs';
import { ServerResponse } from 'node:http';
import { EtcdClient, EtcdMember } from '../../datastore/etcd.js';
import { removeLocalNode } from '../../datastore/state.js';
import { KUBECONFIGS } from '../../pki/table.js';
import { etcdPeerUrl, k8sdEtcdTlsFiles } from '../controlplane.js';
import { ApiError, Request } from '../http.js';
import { local, peer } from '../../api/index.js';
import { parseRequest } from '../../api/parse.js';
import { fingerprintOf } from '../identity.js';
import { leaveHookList } from './extensions.js';
import type { MembershipContext } from './context.js';
import { apiStatus, kubeClients } from './kube-clients.js';
import { K8SD_CLUSTER_PORT } from '../cluster/port.js';
import { nodeRuntimeDirsOf, stopNodeComponents, unmountUnder } from './node-components.js';
import { joinHostPort, peerRequest } from '../cluster/peer.js';
import { requireControlPlaneCaller } from '../cluster/peer-auth.js';
import { removalSafety, VoterHealth } from './quorum.js';
import { MemberRecord, MembershipStore, rotatingNode } from './store.js';
import { RemovalCtx, RemovalOps, removeNode, removeOtherNodeSteps, removeSelfSteps } from '../flows/remove-node.js';

export interface RemoveReply {
  removed: string;
  /** True when this node removed itself and is now cleaning up. */
  self: boolean;
  warnings: string[];
}

const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

async function voterHealth(m: MembershipContext, members: EtcdMember[]): Promise<VoterHealth[]> {
  const l = m.d.layout;
  const files = k8sdEtcdTlsFiles(l, true);
  return Promise.all(
    members.map(async (mem) => {
      if (mem.isLearner || !mem.clientURLs.length) return { name: mem.name || mem.id, voter: !mem.isLearner, healthy: false };
      const probe = EtcdClient.fromFiles(mem.clientURLs, files, 2000);
      try {
        await probe.status(mem.clientURLs[0]!);
        return { name: mem.name || mem.id, voter: true, healthy: true };
      } catch {
        return { name: mem.name || mem.id, voter: true, healthy: false };
      } finally {
        probe.close();
      }
    }),
  );
}

/**
 * Deletes the Kubernetes Node; returns a warning when the API server cannot be asked. A kubelet
 * that is still stopping re-registers its Node, so the delete is repeated until the Node stays
 * gone for a few seconds (up to `settleMs`).
 */
async function deleteKubernetesNode(m: MembershipContext, name: string, settleMs = 0): Promise<string | undefined> {
  const admin = m.d.layout.kubeconfig('admin.conf');
  if (!existsSync(admin)) return undefined;
  const deadline = Date.now() + settleMs;
  let goneSince: number | undefined;
  for (;;) {
    try {
      await (await kubeClients(admin)).core.deleteNode({ name });
      goneSince = undefined;
    } catch (err) {
      if (apiStatus(err) !== 404) return `the Kubernetes node "${name}" could not be deleted (${(err as Error).message}); delete it with "k8s kubectl delete node ${name}"`;
      goneSince ??= Date.now();
    }
    if (Date.now() >= deadline || (goneSince !== undefined && Date.now() - goneSince >= 3000)) return undefined;
    await new Promise((r) => setTimeout(r, 500));
  }
}

function etcdMemberOf(members: EtcdMember[], name: string, rec: MemberRecord | undefined, peerPort: number): EtcdMember | undefined {
  return members.find((x) => x.name === name) ?? (rec ? members.find((x) => x.peerURLs.includes(etcdPeerUrl(rec.address, peerPort))) : undefined);
}

export async function handleRemove(m: MembershipContext, req: Request, res: ServerResponse): Promise<RemoveReply> {
  const { name, force } = parseRequest(local.removeNode, req.body);
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new ApiError(400, 'give the name of the node to remove (see "k8s status" or "k8s kubectl get nodes")');
  const self = m.d.node();
  if (!self) throw new ApiError(409, 'this node is not part of a cluster; there is nothing to remove');
  const isSelf = name === self.name;
  if (self.role !== 'control-plane') {
    if (isSelf && force) {
      res.once('finish', () => void leaveCluster(m, 'removed itself with --force'));
      return { removed: name, self: true, warnings: ['the control plane was not told: run "k8s remove-node ' + name + '" on a control-plane node to delete its records'] };
    }
    throw new ApiError(403, `run remove-node on a control-plane node (or "k8s remove-node ${self.name} --force" here to leave without telling the cluster)`);
  }
  const release = m.d.lock.acquire('removal');
  try {
    if (!m.d.state) {
      if (isSelf && force) return scheduleSelfCleanup(m, res, name, ['the datastore was not reachable: the other members were not updated']);
      throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status", or use another control-plane node');
    }
    const store = new MembershipStore(m.d.state);
    // A CA rotation applies each phase to the members it listed; it stops by itself if one of them fails.
    const rotating = rotatingNode(await store.joinLockHolder().catch(() => undefined));
    if (rotating) throw new ApiError(409, `a CA rotation runs on "${rotating}" right now; remove "${name}" when it has finished or failed`);
    let rec: MemberRecord | undefined;
    let members: EtcdMember[];
    let peerPort: number;
    try {
      rec = await store.member(name);
      members = await m.d.state.etcd.members();
      peerPort = (await m.d.state.getConfig())?.etcdPeerPort ?? 2380;
    } catch (err) {
      if (isSelf && force) return scheduleSelfCleanup(m, res, name, [`the datastore did not answer (${(err as Error).message}): the other members were not updated`]);
      throw new ApiError(503, `the datastore did not answer: ${(err as Error).message}`);
    }
    const member = etcdMemberOf(members, name, rec, peerPort);
    if (!rec && !member) {
      if (!force) {
        throw new ApiError(404, `k8sd has no node named "${name}" in this cluster (see "k8s status"); to delete only a leftover Kubernetes Node of that name, add --force`);
      }
      const warning = await deleteKubernetesNode(m, name);
      return { removed: name, self: false, warnings: warning ? [warning] : [] };
    }
    if (member && !member.isLearner) {
      const verdict = removalSafety(await voterHealth(m, members), member.name || name);
      if (!verdict.safe) {
        if (!force) throw new ApiError(409, `refusing to remove "${name}": ${verdict.reason}; use --force to remove it anyway`);
        m.log.warn('removing a node despite the quorum check (--force)', { node: name, reason: verdict.reason });
      }
    }
    const ctx: RemovalCtx = { name, members, ops: removalOps(m, store), warnings: [], ...(rec ? { rec } : {}), ...(member ? { member } : {}) };
    if (isSelf) {
      const warnings = await removeNode(removeSelfSteps, ctx);
      m.log.warn('this node removed itself from the cluster', { node: name });
      return scheduleSelfCleanup(m, res, name, warnings);
    }
    const warnings = await removeNode(removeOtherNodeSteps, ctx);
    m.log.info('removed a node', { node: name, role: rec?.role ?? 'control-plane', warnings: warnings.length });
    return { removed: name, self: false, warnings };
  } finally {
    release();
  }
}

/** What removal does to the cluster, through this control-plane node. */
function removalOps(m: MembershipContext, store: MembershipStore): RemovalOps {
  return {
    removeMember: (id) => m.d.state!.etcd.removeMember(id),
    removeMemberThroughOthers: (id, others) => removeThroughOthers(m, id, others),
    deleteRecord: (name) => store.deleteMember(name),
    stopKubelet: () => m.d.host.services.stop('kubelet'),
    tellToLeave: async (rec) => {
      const target = { address: joinHostPort(rec.address, K8SD_CLUSTER_PORT), fingerprints: [fingerprintOf(m.d.crypto, rec.clusterCert)] };
      await peerRequest(m.peerIdentity(), target, 'POST', peer.memberLeave.path, { name: rec.name }, 15_000);
    },
    deleteKubernetesNode: (name, settleMs) => deleteKubernetesNode(m, name, settleMs),
    refreshPeers: () => m.refreshPeers(),
  };
}

async function removeThroughOthers(m: MembershipContext, id: string, others: EtcdMember[]): Promise<void> {
  const l = m.d.layout;
  const client = EtcdClient.fromFiles(others.flatMap((o) => o.clientURLs), k8sdEtcdTlsFiles(l, true));
  try {
    await client.removeMember(id);
  } catch (err) {
    // The answer may be lost while the cluster changes; what counts is whether the member is gone.
    const left = await client.members().catch(() => undefined);
    if (!left || left.some((x) => x.id === id)) throw err;
  } finally {
    client.close();
  }
}

function scheduleSelfCleanup(m: MembershipContext, res: ServerResponse, name: string, warnings: string[]): RemoveReply {
  // Answer first: the CLI must get the reply before the services (and maybe the socket's owner) go away.
  res.once('finish', () => void leaveCluster(m, 'removed itself'));
  return { removed: name, self: true, warnings };
}

export async function handleLeave(m: MembershipContext, req: Request, res: ServerResponse): Promise<unknown> {
  const node = m.d.node();
  if (!node) return { leaving: false };
  await requireControlPlaneCaller(m.d, req, 'ask it to leave');
  res.once('finish', () => void leaveCluster(m, 'removed by a control-plane node'));
  return { leaving: node.name };
}

/** Stops everything, forgets the cluster and removes this node's cluster files. k8sd keeps running. */
export async function leaveCluster(m: MembershipContext, reason: string): Promise<void> {
  if (m.leaving) return;
  m.leaving = true;
  const d = m.d;
  const l = d.layout;
  const node = d.node();
  m.log.warn('leaving the cluster: stopping services and removing cluster files', { reason, node: node?.name });
  try {
    m.stopControllers();
    if (existsSync(l.args('kubelet')) || existsSync(l.args('containerd'))) await stopNodeComponents(d.host, m.log, node?.role ?? 'worker').catch((err: Error) => m.log.warn('stopping node components', { error: err.message }));
    await d.host.services.stopAll();
    await d.security.stop().catch((err: Error) => m.log.warn('stopping security services', { error: err.message }));
    d.forgetDatastore();
    for (const h of leaveHookList()) await h.run().catch((err: Error) => m.log.warn('leave hook failed', { hook: h.name, error: err.message }));
    await unmountUnder(nodeRuntimeDirsOf(m.d.layout), m.log);
    const paths = [
      l.pkiDir,
      ...KUBECONFIGS.map((k) => l.kubeconfig(k.name)),
      l.argsDir,
      l.etcdDataDir,
      ...nodeRuntimeDirsOf(m.d.layout),
      l.containerdConfigDir,
      l.cniConfDir,
      l.cniBinDir,
      l.peersFile,
    ];
    for (const p of paths) rmSync(p, { recursive: true, force: true });
    removeLocalNode(l);
    m.log.warn('left the cluster; k8sd keeps running and this node can join again', { node: node?.name });
  } catch (err) {
    m.log.error('cleaning up after leaving the cluster failed; remove the remaining files by hand', { error: (err as Error).message });
  } finally {
    m.leaving = false;
  }
}
