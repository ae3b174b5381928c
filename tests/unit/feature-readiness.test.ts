import { describe, expect, it } from 'vitest';
import { podNotReadyReason } from '../../src/k8sd/features/controller.js';

// What `k8s status` says after "has no available replica yet": the first pod's trouble, in words.
describe('podNotReadyReason', () => {
  it('names an eviction with kubelet’s message', () => {
    const pod = { status: { phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: ephemeral-storage.' } };
    expect(podNotReadyReason(pod)).toBe('Evicted: The node was low on resource: ephemeral-storage.');
  });

  it('names the scheduler’s message for an unscheduled pod', () => {
    const pod = { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }." }] } };
    expect(podNotReadyReason(pod)).toBe("not scheduled: 0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }.");
  });

  it('names a waiting container and its reason', () => {
    const pod = { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }], containerStatuses: [{ name: 'coredns', ready: false, state: { waiting: { reason: 'ErrImageNeverPull', message: 'image not present' } } }] } };
    expect(podNotReadyReason(pod)).toBe('container coredns waiting: ErrImageNeverPull: image not present');
  });

  it('tells a failing readiness probe from a waiting container', () => {
    const pod = { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'coredns', ready: false, state: {} }] } };
    expect(podNotReadyReason(pod)).toBe('container coredns running but not ready (readiness probe)');
  });

  it('has nothing to say about a ready pod', () => {
    const pod = { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'coredns', ready: true, state: {} }] } };
    expect(podNotReadyReason(pod)).toBeUndefined();
  });
});
