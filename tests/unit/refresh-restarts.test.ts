import { describe, expect, it } from 'vitest';
import { servicesFor } from '../../src/k8sd/certs/refresh.js';
import { refreshableNames } from '../../src/pki/table.js';

describe('refresh-certs restarts only what cannot reload its certificates', () => {
  it('a refresh of every control-plane certificate restarts neither kube-apiserver nor etcd', () => {
    const restarted = servicesFor(refreshableNames('control-plane'));
    expect(restarted).not.toContain('kube-apiserver');
    expect(restarted).not.toContain('etcd');
    // Their kubeconfigs embed the client certificate and are read once, at start.
    expect(restarted.sort()).toEqual(['flanneld', 'kube-controller-manager', 'kube-proxy', 'kube-scheduler', 'kubelet']);
  });

  it('the apiserver etcd client certificate alone restarts nothing', () => {
    expect(servicesFor(['apiserver-etcd-client'])).toEqual([]);
    expect(servicesFor(['apiserver', 'apiserver-kubelet-client', 'front-proxy-client', 'etcd-server', 'etcd-peer'])).toEqual([]);
  });
});
