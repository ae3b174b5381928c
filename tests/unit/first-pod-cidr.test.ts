import { ApiException, type CoreV1Api, type V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { firstNodeConflist, mtuOfAddress, VXLAN_OVERHEAD } from '../../src/k8sd/flows/first-pod-network.js';
import { Layout } from '../../src/layout.js';
import { claimFirstPodCidrs, firstNodePodCidrs } from '../../src/k8sd/membership/first-pod-cidr.js';

describe('firstNodePodCidrs', () => {
  it('takes the first /24 of an IPv4 cluster CIDR, as the range allocator would', () => {
    expect(firstNodePodCidrs('10.1.0.0/16')).toEqual(['10.1.0.0/24']);
    expect(firstNodePodCidrs('10.0.0.0/8')).toEqual(['10.0.0.0/24']);
  });

  it('takes the first /64 of an IPv6 CIDR, in the cluster order, for dual stack', () => {
    expect(firstNodePodCidrs('10.1.0.0/16,fd01::/48')).toEqual(['10.1.0.0/24', 'fd01::/64']);
    expect(firstNodePodCidrs('fd01:0:0:100::/56,10.1.0.0/16')).toEqual(['fd01:0:0:100::/64', '10.1.0.0/24']);
  });

  it('leaves cluster CIDRs the allocator would refuse to the controller manager', () => {
    expect(firstNodePodCidrs('10.1.0.0/25')).toBeUndefined(); // narrower than a node block
    expect(firstNodePodCidrs('10.0.0.0/7')).toBeUndefined(); // more than 16 bits wider
    expect(firstNodePodCidrs('10.1.0.0/16,fd01::/108')).toBeUndefined();
  });
});

/** A CoreV1Api seam: listNode and patchNode over an in-memory node list. */
function fakeApi(nodes: V1Node[], patchError?: number): { api: CoreV1Api; patches: unknown[] } {
  const patches: unknown[] = [];
  const api = {
    listNode: async () => ({ items: nodes }),
    patchNode: async (req: { name: string; body: unknown }) => {
      if (patchError) throw new ApiException(patchError, 'refused', {}, {});
      patches.push(req);
      return {};
    },
  } as unknown as CoreV1Api;
  return { api, patches };
}

const node = (name: string, podCIDR?: string): V1Node => ({ metadata: { name }, spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {} });

describe('claimFirstPodCidrs', () => {
  it('sets podCIDR and podCIDRs on the registered first node', async () => {
    const { api, patches } = fakeApi([node('cp1')]);
    expect(await claimFirstPodCidrs(api, 'cp1', '10.1.0.0/16,fd01::/48')).toEqual({ outcome: 'assigned', podCidrs: ['10.1.0.0/24', 'fd01::/64'] });
    expect(patches).toEqual([{ name: 'cp1', body: { spec: { podCIDR: '10.1.0.0/24', podCIDRs: ['10.1.0.0/24', 'fd01::/64'] } } }]);
  });

  it('waits while the node has not registered', async () => {
    const { api, patches } = fakeApi([]);
    expect(await claimFirstPodCidrs(api, 'cp1', '10.1.0.0/16')).toEqual({ outcome: 'pending' });
    expect(patches).toEqual([]);
  });

  it('leaves allocation to the controller manager once any node has a pod CIDR', async () => {
    for (const nodes of [[node('cp1', '10.1.0.0/24')], [node('cp1'), node('w1', '10.1.3.0/24')]]) {
      const { api, patches } = fakeApi(nodes);
      expect(await claimFirstPodCidrs(api, 'cp1', '10.1.0.0/16')).toEqual({ outcome: 'not-needed' });
      expect(patches).toEqual([]);
    }
  });

  it('gives way when the controller manager set the CIDRs first (422), and fails on other errors', async () => {
    expect(await claimFirstPodCidrs(fakeApi([node('cp1')], 422).api, 'cp1', '10.1.0.0/16')).toEqual({ outcome: 'not-needed' });
    await expect(claimFirstPodCidrs(fakeApi([node('cp1')], 403).api, 'cp1', '10.1.0.0/16')).rejects.toThrow();
  });
});

describe('the first node pod network config, before the kubelet starts', () => {
  const ipJson = JSON.stringify([
    { ifname: 'lo', mtu: 65536, addr_info: [{ local: '127.0.0.1' }] },
    { ifname: 'eth0', mtu: 1450, addr_info: [{ local: '10.40.0.2' }, { local: 'fe80::1' }] },
  ]);

  it('reads the MTU of the interface that holds the node address', () => {
    expect(mtuOfAddress(ipJson, '10.40.0.2')).toBe(1450);
    expect(mtuOfAddress(ipJson, '10.40.0.3')).toBeUndefined();
    expect(mtuOfAddress('not json', '10.40.0.2')).toBeUndefined();
  });

  it('predicts the first block, and with the network feature flanneld VXLAN MTU; without an MTU it writes nothing', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'k8s-first-net-'));
    try {
      const l = new Layout({ K8S_ROOT: root });
      const plain = JSON.parse((await firstNodeConflist(l, '10.1.0.0/16', '127.0.0.1'))!);
      expect(plain.plugins[0].ipam.ranges).toEqual([[{ subnet: '10.1.0.0/24' }]]);
      expect(plain.plugins[0].ipMasq).toBe(true);
      expect(plain.plugins[0].mtu).toBeUndefined();
      expect(await firstNodeConflist(l, '10.1.0.0/25', '127.0.0.1')).toBeUndefined();
      // With flanneld: the loopback interface's MTU minus VXLAN's 50 bytes (read from `ip` in this netns).
      mkdirSync(path.dirname(l.args('flanneld')), { recursive: true });
      writeFileSync(l.args('flanneld'), '');
      const lo = mtuOfAddress((await execa('ip', ['-j', 'addr', 'show'])).stdout, '127.0.0.1')!;
      const withNet = JSON.parse((await firstNodeConflist(l, '10.1.0.0/16', '127.0.0.1'))!);
      expect(withNet.plugins[0].mtu).toBe(lo - VXLAN_OVERHEAD);
      expect(withNet.plugins[0].ipMasq).toBe(false);
      expect(await firstNodeConflist(l, '10.1.0.0/16', '192.0.2.123')).toBeUndefined();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
