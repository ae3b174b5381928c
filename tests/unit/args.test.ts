import { describe, expect, it } from 'vitest';
import { mergeArgs, parseArgsFile, renderArgsFile } from '../../src/services/args.js';
import { kubeApiserverArgs, etcdArgs, kubeControllerManagerArgs, kubeSchedulerArgs, ServiceContext } from '../../src/services/specs.js';
import { Layout } from '../../src/layout.js';

const ctx: ServiceContext = {
  layout: new Layout({ K8S_ROOT: '/tmp/root' }),
  nodeName: 'n1',
  nodeAddress: '10.0.0.5',
  securePort: 6443,
  etcdPort: 2379,
  etcdPeerPort: 2380,
  serviceCidr: '10.152.183.0/24',
  podCidr: '10.1.0.0/16',
  etcdServers: ['https://127.0.0.1:2379'],
  etcdInitialCluster: 'n1=https://10.0.0.5:2380',
  etcdInitialClusterState: 'new',
  apiserverSecurityArgs: {},
};

describe('service arguments', () => {
  it('extra args override defaults and null deletes', () => {
    expect(mergeArgs({ a: '1', b: '2' }, { '--b': '3', a: null, c: 'x' })).toEqual({ b: '3', c: 'x' });
  });

  it('round-trips through the args file format', () => {
    const args = { 'anonymous-auth': 'false', 'tls-cipher-suites': 'A,B' };
    const text = renderArgsFile(args);
    expect(text).toBe('--anonymous-auth=false\n--tls-cipher-suites=A,B\n');
    expect(parseArgsFile(text + '--quoted="v w"\n')).toEqual({ ...args, quoted: 'v w' });
  });

  it('kube-apiserver has the secure defaults', () => {
    const a = kubeApiserverArgs(ctx);
    expect(a['anonymous-auth']).toBe('false');
    expect(a['authorization-mode']).toBe('Node,RBAC');
    expect(a['enable-admission-plugins']).toContain('NodeRestriction');
    expect(a.profiling).toBe('false');
    expect(a['tls-min-version']).toBe('VersionTLS12');
    expect(a['tls-cipher-suites']!.split(',').every((s) => /^TLS_ECDHE_.*_GCM_/.test(s))).toBe(true);
    expect(a['client-ca-file']).toBe('/tmp/root/etc/kubernetes/pki/client-ca.crt');
    // Kubelets serve certificates of their own CA, not of the CA that clients trust for the apiserver.
    expect(a['kubelet-certificate-authority']).toBe('/tmp/root/etc/kubernetes/pki/kubelet-ca.crt');
    expect(a['service-account-issuer']).toBe('https://kubernetes.default.svc');
    expect(a['bind-address']).toBeUndefined();
  });

  it('binds to a loopback node address so several nodes share a host', () => {
    const a = kubeApiserverArgs({ ...ctx, nodeAddress: '127.0.0.7' });
    expect(a['bind-address']).toBe('127.0.0.7');
    expect(kubeSchedulerArgs({ ...ctx, nodeAddress: '127.0.0.7' })['bind-address']).toBe('127.0.0.7');
  });

  it('controller manager and scheduler bind to loopback with profiling off', () => {
    const kcm = kubeControllerManagerArgs(ctx);
    expect(kcm['bind-address']).toBe('127.0.0.1');
    expect(kcm.profiling).toBe('false');
    expect(kcm['use-service-account-credentials']).toBe('true');
    expect(kubeSchedulerArgs(ctx)['bind-address']).toBe('127.0.0.1');
  });

  it('etcd listens on loopback and the node address only, with mutual TLS', () => {
    const e = etcdArgs(ctx);
    expect(e['listen-client-urls']).toBe('https://127.0.0.1:2379,https://10.0.0.5:2379');
    expect(e['client-cert-auth']).toBe('true');
    expect(e['peer-client-cert-auth']).toBe('true');
    expect(e['auto-tls']).toBe('false');
    expect(e['listen-metrics-urls']).toBe('http://127.0.0.1:2381');
  });
});
