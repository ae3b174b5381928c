import { describe, expect, it } from 'vitest';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';
import { applyFeatureChanges, defaultFeatureSettings, FeatureConfigError, flattenFeatureSettings, ipInCidr, selectFeatureSettings } from '../../src/config/features.js';
import { corefile, featureObjects, FEATURE_KINDS, FEATURE_LABEL, ManifestContext, metricsServerArgs } from '../../src/k8sd/features/manifests.js';
import { serviceIds } from '../../src/services/registry.js';
import { Layout } from '../../src/layout.js';
import { renderCniConflist } from '../../src/services/worker-specs.js';

const facts = { serviceCidr: '10.152.183.0/24' };
const base = defaultFeatureSettings(facts.serviceCidr, true);

function refused(changes: Record<string, unknown>, key: string, reason: RegExp): void {
  let err: unknown;
  try {
    applyFeatureChanges(base, changes, facts);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${JSON.stringify(changes)} to be refused`).toBeInstanceOf(FeatureConfigError);
  expect((err as FeatureConfigError).key).toBe(key);
  expect((err as FeatureConfigError).reason).toMatch(reason);
}

describe('feature settings (k8s set / k8s get)', () => {
  it('defaults: network, dns, gateway, local-storage and metrics-server on for a plain bootstrap (as CK8s), DNS at the 10th service address', () => {
    expect(base.network.enabled).toBe(true);
    expect([base.gateway.enabled, base['local-storage'].enabled, base['metrics-server'].enabled]).toEqual([true, true, true]);
    expect([base.ingress.enabled, base['load-balancer'].enabled]).toEqual([false, false]);
    expect(base.dns).toEqual({ enabled: true, 'cluster-domain': 'cluster.local', 'service-ip': '10.152.183.10', 'upstream-nameservers': ['/etc/resolv.conf'] });
  });

  it('applies valid changes to a copy and leaves the input alone', () => {
    const next = applyFeatureChanges(base, { 'dns.upstream-nameservers': '1.1.1.1,9.9.9.9:53', 'dns.service-ip': '10.152.183.53', 'gateway.enabled': 'false', 'network.enabled': 'false' }, facts);
    expect(next.dns['upstream-nameservers']).toEqual(['1.1.1.1', '9.9.9.9:53']);
    expect(next.dns['service-ip']).toBe('10.152.183.53');
    expect(next.network.enabled).toBe(false);
    expect(base.network.enabled).toBe(true);
  });

  it('refuses bad keys and values, naming the key', () => {
    refused({ 'nosuch.key': '1' }, 'nosuch.key', /unknown feature "nosuch"/);
    refused({ 'dns.nosuch': '1' }, 'dns.nosuch', /unknown key; dns has dns.enabled/);
    refused({ 'dns.service-ip': 'not-an-ip' }, 'dns.service-ip', /not an IP address/);
    refused({ 'dns.service-ip': '10.0.0.10' }, 'dns.service-ip', /outside the service CIDR 10.152.183.0\/24/);
    refused({ 'dns.service-ip': '10.152.183.1' }, 'dns.service-ip', /kubernetes Service/);
    refused({ 'dns.enabled': 'yes' }, 'dns.enabled', /not a boolean/);
    refused({ 'dns.upstream-nameservers': 'example.com' }, 'dns.upstream-nameservers', /neither an IP address/);
    refused({ 'dns.cluster-domain': 'other.local' }, 'dns.cluster-domain', /fixed at bootstrap/);
    refused({ 'load-balancer.enabled': 'true' }, 'load-balancer.cidrs', /./);
    refused({ 'network.kube-proxy-enabled': 'false' }, 'network.kube-proxy-enabled', /kube-proxy is required/);
    refused({ dns: 'true' }, 'dns', /name a key/);
  });

  it('disabling a feature that is off changes nothing', () => {
    expect(applyFeatureChanges(base, { 'ingress.enabled': false, 'load-balancer.enabled': 'false' }, facts)).toEqual(base);
  });

  it('k8s get: everything, one feature, one key', () => {
    expect(flattenFeatureSettings(base)['metrics-server.enabled']).toBe(true);
    expect(flattenFeatureSettings(base)['ingress.enabled']).toBe(false);
    expect(selectFeatureSettings(base, 'dns.service-ip')).toBe('10.152.183.10');
    expect(selectFeatureSettings(base, 'network')).toEqual({ enabled: true, 'kube-proxy-enabled': true });
    expect(() => selectFeatureSettings(base, 'nosuch')).toThrow(/unknown feature/);
    expect(() => selectFeatureSettings(base, 'dns.nosuch')).toThrow(/unknown key/);
  });

  it('ipInCidr for IPv4 and IPv6', () => {
    expect(ipInCidr('10.152.183.200', '10.152.183.0/24')).toBe(true);
    expect(ipInCidr('10.152.184.1', '10.152.183.0/24')).toBe(false);
    expect(ipInCidr('fd98::10', 'fd98::/108')).toBe(true);
    expect(ipInCidr('fd99::10', 'fd98::/108')).toBe(false);
  });
});

describe('cluster-config in the bootstrap file', () => {
  it('a plain bootstrap enables the CK8s defaults; with a file an omitted feature is off, except metrics-server', () => {
    const enabled = (text: string): string[] => Object.entries(parseBootstrapYaml(text).features).filter(([, f]) => f.enabled).map(([name]) => name).sort();
    expect(enabled('')).toEqual(['dns', 'gateway', 'local-storage', 'metrics-server', 'network']);
    expect(enabled('pod-cidr: 10.1.0.0/16\n')).toEqual(['metrics-server']);
    expect(enabled('cluster-config:\n  network: {enabled: true}\n  metrics-server: {enabled: false}\n')).toEqual(['network']);
    expect(enabled('cluster-config:\n  network: {enabled: true}\n  gateway: {enabled: true}\n')).toEqual(['gateway', 'metrics-server', 'network']);
  });

  it('honours dns keys and control-plane-taints', () => {
    const c = parseBootstrapYaml(`
cluster-config:
  dns: {enabled: true, cluster-domain: k8s.example, service-ip: 10.152.183.20, upstream-nameservers: [8.8.8.8]}
control-plane-taints: ["node-role.kubernetes.io/control-plane:NoSchedule"]
`);
    expect(c.clusterDomain).toBe('k8s.example');
    expect(c.features.dns).toEqual({ enabled: true, 'cluster-domain': 'k8s.example', 'service-ip': '10.152.183.20', 'upstream-nameservers': ['8.8.8.8'] });
    expect(c.controlPlaneTaints).toEqual(['node-role.kubernetes.io/control-plane:NoSchedule']);
  });

  it('refuses what it does not implement, and bad values, with the key named', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['cluster-config: {gateway: {enabled: true}}', 'cluster-config.gateway.enabled', /needs the network feature/],
      ['cluster-config: {local-storage: {reclaim-policy: Foo}}', 'cluster-config.local-storage.reclaim-policy', /Delete/],
      ['cluster-config: {load-balancer: {enabled: true, cidrs: [10.0.0.0/33]}}', 'cluster-config.load-balancer.cidrs', /maximum for IPv4/],
      ['cluster-config: {dns: {service-ip: 10.0.0.10}}', 'cluster-config.dns.service-ip', /outside the service CIDR/],
      ['cluster-config: {cloud-provider: external}', 'cluster-config.cloud-provider', /not supported/],
      ['cluster-config: {annotations: {a: b}}', 'cluster-config.annotations.a', /not supported/],
      ['control-plane-taints: [bad]', 'control-plane-taints[0]', /not a taint/],
    ];
    for (const [yaml, key, reason] of cases) {
      let err: unknown;
      try {
        parseBootstrapYaml(yaml);
      } catch (e) {
        err = e;
      }
      expect(err, yaml).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).key, yaml).toBe(key);
      expect((err as ConfigError).reason, yaml).toMatch(reason);
    }
  });
});

describe('feature manifests', () => {
  const ctx: ManifestContext = {
    settings: base,
    versions: { coredns: 'v1.14.7', 'local-path-provisioner': 'v0.0.30', 'local-path-helper': 'v0.0.30', 'metrics-server': 'v0.8.0', traefik: 'v3.6.12' },
    fips: false,
    root: '/tmp/node1',
    metricsServer: { cert: 'CERT', key: 'KEY', ca: 'SERVING-CA', kubeletCa: 'KUBELET-CA' },
  };
  type Obj = Record<string, never> & { kind: string; metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> } };
  const find = (objs: unknown[], kind: string, name?: string): Obj => (objs as Obj[]).find((o) => o.kind === kind && (!name || o.metadata.name === name))!;
  const containerOf = (dep: Obj): Record<string, unknown> & { args: string[]; image: string; securityContext: Record<string, unknown> } =>
    (dep as unknown as { spec: { template: { spec: { containers: Array<Record<string, unknown> & { args: string[]; image: string; securityContext: Record<string, unknown> }> } } } }).spec.template.spec.containers[0]!;

  it('local-storage: its own privileged namespace, the configured path under the node root, reclaim policy and default class', () => {
    const s = applyFeatureChanges(base, { 'local-storage.local-path': '/srv/volumes', 'local-storage.reclaim-policy': 'Retain', 'local-storage.default': 'false' }, facts);
    const objs = featureObjects('local-storage', { ...ctx, settings: s });
    const ns = find(objs, 'Namespace');
    expect(ns.metadata.name).toBe('local-path-storage');
    expect(ns.metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
    const sc = find(objs, 'StorageClass') as unknown as { reclaimPolicy: string; volumeBindingMode: string; metadata: { annotations: Record<string, string> } };
    expect(sc.reclaimPolicy).toBe('Retain');
    expect(sc.volumeBindingMode).toBe('WaitForFirstConsumer');
    expect(sc.metadata.annotations['storageclass.kubernetes.io/is-default-class']).toBe('false');
    const defaults = find(featureObjects('local-storage', ctx), 'StorageClass') as unknown as { reclaimPolicy: string; metadata: { annotations: Record<string, string> } };
    expect(defaults.reclaimPolicy).toBe('Delete');
    expect(defaults.metadata.annotations['storageclass.kubernetes.io/is-default-class']).toBe('true');
    const cm = find(objs, 'ConfigMap') as unknown as { data: Record<string, string> };
    expect(JSON.parse(cm.data['config.json']!)).toEqual({ nodePathMap: [{ node: 'DEFAULT_PATH_FOR_NON_LISTED_NODES', paths: ['/tmp/node1/srv/volumes'] }] });
    const helper = JSON.parse(cm.data['helperPod.yaml']!) as { spec: { automountServiceAccountToken: boolean; containers: Array<{ image: string; securityContext: { capabilities: { drop: string[]; add: string[] } } }> } };
    expect(helper.spec.automountServiceAccountToken).toBe(false);
    expect(helper.spec.containers[0]!.image).toBe('k8s-ts.local/local-path-helper:v0.0.30');
    expect(helper.spec.containers[0]!.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['DAC_OVERRIDE'] });
    const c = containerOf(find(objs, 'Deployment'));
    expect(c.image).toBe('k8s-ts.local/local-path-provisioner:v0.0.30');
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    // Least privilege: no Secrets, no ConfigMaps, pods only in its namespace.
    const clusterRules = JSON.stringify(find(objs, 'ClusterRole'));
    expect(clusterRules).not.toMatch(/secrets|configmaps|"pods"|\*/);
  });

  it('local-storage settings: bad values refused with the key named', () => {
    refused({ 'local-storage.reclaim-policy': 'Foo' }, 'local-storage.reclaim-policy', /not a reclaim policy; use Delete or Retain/);
    refused({ 'local-storage.reclaim-policy': 'Recycle' }, 'local-storage.reclaim-policy', /not a reclaim policy/);
    refused({ 'local-storage.local-path': 'relative/dir' }, 'local-storage.local-path', /not an absolute path/);
    refused({ 'local-storage.local-path': '/srv/../etc' }, 'local-storage.local-path', /not a plain absolute path/);
    refused({ 'local-storage.local-path': '/' }, 'local-storage.local-path', /system directory/);
    refused({ 'local-storage.local-path': '/etc' }, 'local-storage.local-path', /system directory/);
    refused({ 'local-storage.default': 'maybe' }, 'local-storage.default', /not a boolean/);
    refused({ 'metrics-server.nosuch': '1' }, 'metrics-server.nosuch', /unknown key; metrics-server has metrics-server.enabled/);
    expect(base['local-storage']).toEqual({ enabled: true, 'local-path': '/var/snap/k8s/common/rawfile-storage', 'reclaim-policy': 'Delete', default: true });
    expect(selectFeatureSettings(base, 'local-storage.reclaim-policy')).toBe('Delete');
    expect(applyFeatureChanges(base, { 'local-storage.local-path': '/srv/vols/' }, facts)['local-storage']['local-path']).toBe('/srv/vols');
  });

  it('metrics-server: front-proxy chain, its own serving certificate, kubelets verified by their CA', () => {
    const objs = featureObjects('metrics-server', ctx);
    const api = find(objs, 'APIService') as unknown as { spec: { caBundle: string; insecureSkipTLSVerify: boolean; service: { name: string; namespace: string } } };
    expect(Buffer.from(api.spec.caBundle, 'base64').toString()).toBe('SERVING-CA');
    expect(api.spec.insecureSkipTLSVerify).toBe(false);
    expect(api.spec.service).toMatchObject({ name: 'metrics-server', namespace: 'kube-system' });
    expect(metricsServerArgs().join(' ')).not.toMatch(/insecure/);
    expect(metricsServerArgs()).toContain('--kubelet-certificate-authority=/etc/metrics-server/kubelet-ca/ca.crt');
    const kubeletCa = find(objs, 'ConfigMap', 'metrics-server-kubelet-ca') as unknown as { data: Record<string, string> };
    expect(kubeletCa.data['ca.crt']).toBe('KUBELET-CA');
    const rb = find(objs, 'RoleBinding') as unknown as { roleRef: { name: string } };
    expect(rb.roleRef.name).toBe('extension-apiserver-authentication-reader');
    expect(find(objs, 'ClusterRoleBinding', 'k8sd:metrics-server:auth-delegator')).toBeDefined();
    expect(find(objs, 'ClusterRole', 'system:aggregated-metrics-reader').metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view']).toBe('true');
    expect(containerOf(find(objs, 'Deployment')).image).toBe('k8s-ts.local/metrics-server:v0.8.0');
    expect(() => featureObjects('metrics-server', { ...ctx, metricsServer: undefined })).toThrow(/TLS material/);
  });

  it('label every object with its feature and stay within the kinds disabling looks for', () => {
    for (const name of ['dns', 'network', 'local-storage', 'metrics-server'] as const) {
      const kinds = new Set(FEATURE_KINDS[name].map((k) => `${k.apiVersion}/${k.kind}`));
      for (const obj of featureObjects(name, ctx)) {
        expect(obj.metadata?.labels?.[FEATURE_LABEL], `${obj.kind} ${obj.metadata?.name}`).toBe(name);
        expect(kinds.has(`${obj.apiVersion}/${obj.kind}`), `${obj.kind} listed in FEATURE_KINDS.${name}`).toBe(true);
      }
    }
  });

  it('CoreDNS: side-loaded image, the configured Service IP, domain and upstreams', () => {
    const objs = featureObjects('dns', { ...ctx, settings: applyFeatureChanges(base, { 'dns.upstream-nameservers': '1.1.1.1', 'dns.service-ip': '10.152.183.53' }, facts) });
    const svc = objs.find((o) => o.kind === 'Service') as { spec: { clusterIP: string } };
    expect(svc.spec.clusterIP).toBe('10.152.183.53');
    const dep = objs.find((o) => o.kind === 'Deployment') as { spec: { template: { spec: { containers: Array<{ image: string; imagePullPolicy: string; securityContext: Record<string, unknown> }> } } } };
    const c = dep.spec.template.spec.containers[0]!;
    expect(c.image).toBe('k8s-ts.local/coredns:v1.14.7');
    expect(c.imagePullPolicy).toBe('Never');
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(corefile(base.dns)).toMatch(/^\.:53 \{/);
    expect(corefile(base.dns)).toMatch(/kubernetes cluster\.local in-addr\.arpa ip6\.arpa/);
    expect(corefile({ ...base.dns, 'upstream-nameservers': ['1.1.1.1', '8.8.8.8'] })).toMatch(/forward \. 1\.1\.1\.1 8\.8\.8\.8/);
  });
});

describe('component registry', () => {
  it('control-plane nodes run the node components too; workers run the proxy instead of the control plane', () => {
    expect(serviceIds({ role: 'control-plane' })).toEqual(['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'containerd', 'kubelet', 'flanneld', 'kube-proxy']);
    expect(serviceIds({ role: 'worker', network: false })).toEqual(['containerd', 'k8s-apiserver-proxy', 'kubelet', 'kube-proxy']);
    expect(serviceIds({ role: 'control-plane', managedDatastore: false, tier: 'control-plane' })).toEqual(['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']);
  });

  it('the pod network leaves masquerading to flanneld and takes its MTU when the network feature runs', () => {
    const l = new Layout({ K8S_ROOT: '/tmp/x' });
    const plain = JSON.parse(renderCniConflist(l, ['10.1.0.0/24'])) as { plugins: Array<Record<string, unknown>> };
    expect(plain.plugins[0]!.ipMasq).toBe(true);
    const flannel = JSON.parse(renderCniConflist(l, ['10.1.0.0/24'], { network: true, mtu: 1450 })) as { plugins: Array<Record<string, unknown>> };
    expect(flannel.plugins[0]!.ipMasq).toBe(false);
    expect(flannel.plugins[0]!.mtu).toBe(1450);
  });
});
