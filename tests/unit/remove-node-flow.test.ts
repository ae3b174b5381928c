// Removing a node as named, forward-only steps, with a recording double of what removal does.
import { describe, expect, it } from 'vitest';
import type { EtcdMember } from '../../src/datastore/etcd.js';
import { RemovalCtx, RemovalOps, removeNode, removeOtherNodeSteps, removeSelfSteps } from '../../src/k8sd/flows/remove-node.js';
import { ApiError } from '../../src/k8sd/http.js';

const member = (id: string, name: string): EtcdMember => ({ id, name, peerURLs: [`https://${name}:2380`], clientURLs: [`https://${name}:2379`], isLearner: false });

function ctxWith(fail: Partial<Record<keyof RemovalOps, string>> = {}): { ctx: RemovalCtx; log: string[] } {
  const log: string[] = [];
  const op = (what: keyof RemovalOps, entry: string): void => {
    log.push(entry);
    if (fail[what]) throw new Error(fail[what]);
  };
  const ops: RemovalOps = {
    removeMember: async (id) => op('removeMember', `remove-member ${id}`),
    removeMemberThroughOthers: async (id, others) => op('removeMemberThroughOthers', `remove-member ${id} via ${others.map((o) => o.name).join(',')}`),
    deleteRecord: async (name) => op('deleteRecord', `delete-record ${name}`),
    stopKubelet: async () => op('stopKubelet', 'stop kubelet'),
    tellToLeave: async (rec) => op('tellToLeave', `tell ${rec.name}`),
    deleteKubernetesNode: async (name, settleMs) => (op('deleteKubernetesNode', `delete-node ${name} settle=${settleMs}`), undefined),
    refreshPeers: async () => op('refreshPeers', 'refresh-peers'),
  };
  const members = [member('m1', 'cp-1'), member('m2', 'cp-2')];
  return { log, ctx: { name: 'cp-2', rec: { name: 'cp-2', address: '10.0.0.6', role: 'control-plane', clusterCert: 'C', joinedAt: '' }, member: members[1], members, ops, warnings: [] } };
}

describe('node removal as steps', () => {
  it('another node: etcd member, record, told to leave, then its Node deleted after it settles, peers refreshed', async () => {
    const { ctx, log } = ctxWith();
    expect(removeOtherNodeSteps.map((s) => s.name)).toEqual(['remove-datastore-member', 'delete-record', 'tell-node', 'delete-kubernetes-node', 'refresh-peers']);
    expect(await removeNode(removeOtherNodeSteps, ctx)).toEqual([]);
    expect(log).toEqual(['remove-member m2', 'delete-record cp-2', 'tell cp-2', 'delete-node cp-2 settle=20000', 'refresh-peers']);
  });

  it('a node that cannot be told is a warning, and its Node is deleted without waiting', async () => {
    const { ctx, log } = ctxWith({ tellToLeave: 'connection refused' });
    const warnings = await removeNode(removeOtherNodeSteps, ctx);
    expect(warnings).toEqual(['node "cp-2" could not be told to clean up (connection refused); run "k8s remove-node cp-2 --force" on it before it joins again']);
    expect(log).toContain('delete-node cp-2 settle=0');
  });

  it('an etcd member that cannot be removed stops the removal before anything changed (500)', async () => {
    const { ctx, log } = ctxWith({ removeMember: 'etcdserver: unhealthy cluster' });
    const err = await removeNode(removeOtherNodeSteps, ctx).catch((e: Error) => e);
    expect((err as ApiError).status).toBe(500);
    expect(log).toEqual(['remove-member m2']);
  });

  it('a failing record delete names its step', async () => {
    const { ctx } = ctxWith({ deleteRecord: 'etcd timed out' });
    await expect(removeNode(removeOtherNodeSteps, ctx)).rejects.toThrow('remove cp-2 failed at step "delete-record": etcd timed out');
  });

  it('itself: record, kubelet, Node, and its own etcd member last, through the other members', async () => {
    const { ctx, log } = ctxWith({ stopKubelet: 'not running' });
    expect(removeSelfSteps.map((s) => s.name)).toEqual(['delete-record', 'stop-kubelet', 'delete-kubernetes-node', 'remove-datastore-member']);
    await removeNode(removeSelfSteps, ctx);
    expect(log).toEqual(['delete-record cp-2', 'stop kubelet', 'delete-node cp-2 settle=0', 'remove-member m2 via cp-1']);
  });
});
