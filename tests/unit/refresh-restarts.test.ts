import { describe, expect, it } from 'vitest';
import { servicesFor } from '../../src/k8sd/certs/refresh.js';
import { KUBECONFIGS, refreshableNames } from '../../src/pki/table.js';

describe('refresh-certs restarts only what cannot reload its certificates', () => {
  it('a refresh of every control-plane certificate restarts neither kube-apiserver nor etcd', () => {
    const restarted = servicesFor(refreshableNames('control-plane'));
    expect(restarted).not.toContain('kube-apiserver');
    expect(restarted).not.toContain('etcd');
    // Without knowing that their clients reload: each service behind a kubeconfig.
    expect(restarted.sort()).toEqual(['flanneld', 'kube-controller-manager', 'kube-proxy', 'kube-scheduler', 'kubelet']);
  });

  it('kubeconfigs whose clients reload their certificate files restart nothing; the kubelet serving certificate still restarts the kubelet', () => {
    const reloading = new Set(KUBECONFIGS.filter((k) => k.reloads).map((k) => k.name));
    expect([...reloading].sort()).toEqual(['controller.conf', 'flannel.conf', 'proxy.conf', 'scheduler.conf']);
    expect(servicesFor(refreshableNames('control-plane'), reloading)).toEqual(['kubelet']);
  });

  it('the apiserver etcd client certificate alone restarts nothing', () => {
    expect(servicesFor(['apiserver-etcd-client'])).toEqual([]);
    expect(servicesFor(['apiserver', 'apiserver-kubelet-client', 'front-proxy-client', 'etcd-server', 'etcd-peer'])).toEqual([]);
  });
});
