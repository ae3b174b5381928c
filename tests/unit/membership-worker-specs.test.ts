import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import {
  containerdConfig,
  kubeletArgs,
  kubeletConfig,
  kubeProxyArgs,
  mergeToml,
  NodeServiceContext,
  renderCniConflist,
  renderKubeletConfig,
  renderToml,
} from '../../src/services/worker-specs.js';

const layout = new Layout({ K8S_ROOT: '/tmp/node-w1', HOME: '/root' });
const ctx: NodeServiceContext = {
  layout,
  role: 'worker',
  nodeName: 'w1',
  nodeAddress: '10.0.0.21',
  podCidr: '10.1.0.0/16',
  serviceCidr: '10.152.183.0/24',
  clusterDomain: 'cluster.local',
  dnsServiceIp: '10.152.183.10',
  failCgroupV1: false,
  apiserverPort: 6443,
};

describe('node component specs', () => {
  it('keeps every containerd path under the node root, with cgroupfs and runc by absolute path', () => {
    const toml = renderToml(containerdConfig(ctx));
    expect(toml).toMatch(/^version = 4$/m);
    expect(toml).toContain('root = "/tmp/node-w1/var/lib/containerd"');
    expect(toml).toContain('address = "/tmp/node-w1/run/containerd/containerd.sock"');
    expect(toml).toContain('SystemdCgroup = false');
    expect(toml).toContain(`BinaryName = "${layout.componentBinary('runc', 'runc')}"`);
    expect(toml).toContain('Root = "/tmp/node-w1/run/containerd/runc"');
    expect(toml).toContain('sandbox = "registry.k8s.io/pause:3.10.2"');
    expect(toml).toContain('bin_dirs = ["/tmp/node-w1/opt/cni/bin"]');
    expect(toml).toMatch(/\[plugins\.'io\.containerd\.nri\.v1\.nri'\]\n {2}disable = true/);
  });

  it('merges extra containerd config over the defaults', () => {
    const merged = mergeToml(containerdConfig(ctx), { plugins: { 'io.containerd.grpc.v1.cri': { stream_idle_timeout: '1h' } }, oom_score: -999 });
    const toml = renderToml(merged);
    expect(toml).toContain('stream_idle_timeout = "1h"');
    expect(toml).toContain('stream_server_address = "127.0.0.1"');
    expect(toml).toContain('oom_score = -999');
  });

  it('configures the kubelet securely for a cgroup v1 host', () => {
    const c = kubeletConfig(ctx) as Record<string, unknown> & { authentication: { anonymous: { enabled: boolean }; x509: { clientCAFile: string } } };
    expect(c.failCgroupV1).toBe(false);
    expect(c.cgroupDriver).toBe('cgroupfs');
    expect(c.readOnlyPort).toBe(0);
    expect(c.authentication.anonymous.enabled).toBe(false);
    expect(c.authentication.x509.clientCAFile).toBe('/tmp/node-w1/etc/kubernetes/pki/client-ca.crt');
    expect(c.authorization).toMatchObject({ mode: 'Webhook' });
    expect(c.serverTLSBootstrap).toBe(true);
    expect(c.rotateCertificates).toBe(true); // CIS 4.2.10
    expect(c.clusterDNS).toEqual(['10.152.183.10']);
    expect(yaml.load(renderKubeletConfig(ctx))).toMatchObject({ kind: 'KubeletConfiguration', failSwapOn: false });
    expect(kubeletArgs(ctx)).toMatchObject({
      'node-ip': '10.0.0.21',
      'hostname-override': 'w1',
      'node-labels': 'k8sd.io/role=worker',
      'root-dir': '/tmp/node-w1/var/lib/kubelet',
      'cert-dir': '/tmp/node-w1/var/lib/kubelet/pki',
    });
  });

  it('binds kube-proxy health and metrics to loopback in iptables mode', () => {
    expect(kubeProxyArgs(ctx)).toMatchObject({
      'proxy-mode': 'iptables',
      'cluster-cidr': '10.1.0.0/16',
      'healthz-bind-address': '127.0.0.1:10256',
      'metrics-bind-address': '127.0.0.1:10249',
    });
  });

  it('writes a bridge + host-local conflist over the node pod CIDRs', () => {
    const c = JSON.parse(renderCniConflist(layout, ['10.1.3.0/24', 'fd01::/64'])) as { plugins: Array<{ type: string; ipam?: { ranges: unknown; dataDir: string; routes: unknown } }> };
    expect(c.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(c.plugins[0]!.ipam!.ranges).toEqual([[{ subnet: '10.1.3.0/24' }], [{ subnet: 'fd01::/64' }]]);
    expect(c.plugins[0]!.ipam!.dataDir).toBe('/tmp/node-w1/var/lib/cni/networks');
    expect(c.plugins[0]!.ipam!.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
  });
});

describe('OOM score capability', () => {
  it('reads CAP_SYS_RESOURCE from the effective capability set', async () => {
    const { canLowerOomScores } = await import('../../src/k8sd/membership/node-components.js');
    expect(canLowerOomScores('CapEff:\t000001ffffffffff\n')).toBe(true);
    expect(canLowerOomScores('CapEff:\t000001fffeffffff\n')).toBe(false);
  });

  it('clamps pod OOM scores in containerd only when asked', () => {
    expect(renderToml(containerdConfig(ctx))).not.toContain('restrict_oom_score_adj');
    expect(renderToml(containerdConfig({ ...ctx, restrictOomScoreAdj: true }))).toContain('restrict_oom_score_adj = true');
  });
});
