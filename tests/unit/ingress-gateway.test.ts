import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';
import { applyFeatureChanges, defaultFeatureSettings, FeatureConfigError, FeatureSettings, flattenFeatureSettings, IMPLEMENTED_FEATURES } from '../../src/config/features.js';
import { nodeImages } from '../../src/services/images.js';
import { DATA_PLANE_NAME, GATEWAY_CLASS, INGRESS_CLASS, parseGatewayApi, traefikArgs } from '../../src/k8sd/features/ingress-gateway.js';
import { FEATURE_IMAGES, FEATURE_KINDS, FEATURE_LABEL, FeatureObject, featureObjects, IMAGE_REGISTRY, ManifestContext } from '../../src/k8sd/features/manifests.js';
import { Layout } from '../../src/layout.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const facts = { serviceCidr: '10.152.183.0/24' };
const base = defaultFeatureSettings(facts.serviceCidr, true);

const CRD_YAML = `---
# a comment document
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gatewayclasses.gateway.networking.k8s.io
  annotations: {gateway.networking.k8s.io/bundle-version: v1.4.1}
spec: {group: gateway.networking.k8s.io}
`;

function ctxFor(settings: FeatureSettings): ManifestContext {
  return {
    settings,
    versions: { coredns: 'v1.14.7', 'local-path-provisioner': 'v0.0.30', 'local-path-helper': 'v0.0.30', 'metrics-server': 'v0.8.0', traefik: 'v3.6.12' },
    fips: false,
    root: '/tmp/node1',
    metricsServer: { cert: 'CERT', key: 'KEY', ca: 'SERVING-CA', kubeletCa: 'KUBELET-CA' },
    gatewayApi: parseGatewayApi(CRD_YAML, 'test.yaml'),
    ingressTlsHash: '',
  };
}

type Pod = { spec: { securityContext: Record<string, unknown>; containers: Array<{ image: string; imagePullPolicy: string; args?: string[]; securityContext: Record<string, unknown>; ports?: Array<{ containerPort: number }> }>; volumes?: Array<Record<string, unknown>> }; metadata?: { annotations?: Record<string, string> } };
const podOf = (o: FeatureObject): Pod => (o as unknown as { spec: { template: Pod } }).spec.template;
const find = (objs: FeatureObject[], kind: string): FeatureObject => objs.find((o) => o.kind === kind)!;

function refusal(fn: () => unknown): FeatureConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FeatureConfigError) return e;
    throw e;
  }
  throw new Error('expected a FeatureConfigError');
}

describe('ingress and gateway settings', () => {
  it('ingress is off and gateway on after a plain bootstrap (as CK8s), with CK8s key names in k8s get', () => {
    const flat = flattenFeatureSettings(base);
    expect(flat['ingress.enabled']).toBe(false);
    expect(flat['ingress.default-tls-secret']).toBe('');
    expect(flat['ingress.enable-proxy-protocol']).toBe(false);
    expect(flat['gateway.enabled']).toBe(true);
  });

  it('accept their keys', () => {
    const next = applyFeatureChanges(base, { 'ingress.enabled': 'true', 'ingress.default-tls-secret': 'my-cert', 'ingress.enable-proxy-protocol': true, 'gateway.enabled': true }, facts);
    expect(next.ingress).toEqual({ enabled: true, 'default-tls-secret': 'my-cert', 'enable-proxy-protocol': true });
    expect(next.gateway).toEqual({ enabled: true });
    expect(applyFeatureChanges(next, { 'ingress.default-tls-secret': '' }, facts).ingress['default-tls-secret']).toBe('');
  });

  it('refuse bad values, naming the key', () => {
    let e = refusal(() => applyFeatureChanges(base, { 'ingress.default-tls-secret': 'Bad_Name' }, facts));
    expect(e.key).toBe('ingress.default-tls-secret');
    expect(e.reason).toMatch(/not a Secret name.*kube-system/);
    e = refusal(() => applyFeatureChanges(base, { 'ingress.enable-proxy-protocol': 'yes' }, facts));
    expect(e.key).toBe('ingress.enable-proxy-protocol');
    e = refusal(() => applyFeatureChanges(base, { 'gateway.nosuch': 'x' }, facts));
    expect(e.reason).toMatch(/unknown key; gateway has gateway.enabled/);
  });

  it('need the network: enabling either with network off, or turning network off under them, is refused', () => {
    const off = applyFeatureChanges(base, { 'gateway.enabled': false, 'network.enabled': false }, facts);
    for (const feature of ['ingress', 'gateway']) {
      const e = refusal(() => applyFeatureChanges(off, { [`${feature}.enabled`]: true }, facts));
      expect(e.key).toBe(`${feature}.enabled`);
      expect(e.reason).toMatch(/needs the network feature.*enable network first/);
    }
    const on = applyFeatureChanges(base, { 'gateway.enabled': true }, facts);
    expect(refusal(() => applyFeatureChanges(on, { 'network.enabled': false }, facts)).key).toBe('gateway.enabled');
    // Both in one change set, in either order, are fine.
    expect(applyFeatureChanges(off, { 'ingress.enabled': true, 'network.enabled': true }, facts).ingress.enabled).toBe(true);
  });

  it('bootstrap file: ingress without network is refused with the cluster-config key', () => {
    let err: unknown;
    try {
      parseBootstrapYaml('cluster-config: {ingress: {enabled: true}}');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe('cluster-config.ingress.enabled');
    const c = parseBootstrapYaml('cluster-config: {network: {enabled: true}, ingress: {enabled: true, default-tls-secret: tls}, gateway: {enabled: true}}');
    expect(c.features.ingress).toEqual({ enabled: true, 'default-tls-secret': 'tls', 'enable-proxy-protocol': false });
    expect(c.features.gateway.enabled).toBe(true);
  });
});

describe('ingress and gateway manifests', () => {
  const on = applyFeatureChanges(base, { 'ingress.enabled': true, 'gateway.enabled': true }, facts);

  it('ingress: a default IngressClass for Traefik, reached on a NodePort Service', () => {
    const objs = featureObjects('ingress', ctxFor(on));
    const cls = find(objs, 'IngressClass') as FeatureObject & { spec: { controller: string } };
    expect(cls.metadata?.name).toBe(INGRESS_CLASS);
    expect(cls.metadata?.annotations?.['ingressclass.kubernetes.io/is-default-class']).toBe('true');
    expect(cls.spec.controller).toBe('traefik.io/ingress-controller');
    const svc = find(objs, 'Service') as FeatureObject & { spec: { type: string; ports: Array<{ port: number; targetPort: string }> } };
    expect(svc.spec.type).toBe('NodePort');
    expect(svc.spec.ports.map((p) => [p.port, p.targetPort])).toEqual([[80, 'web'], [443, 'websecure']]);
    expect(objs.some((o) => o.kind === 'ConfigMap')).toBe(false);
  });

  it('the data planes: restricted pods, no dashboard or API, least-privilege RBAC', () => {
    for (const plane of ['ingress', 'gateway'] as const) {
      const objs = featureObjects(plane, ctxFor(on));
      const pod = podOf(find(objs, 'Deployment'));
      const c = pod.spec.containers[0]!;
      expect(c.image).toBe('k8s-ts.local/traefik:v3.6.12');
      expect(c.imagePullPolicy).toBe('Never');
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      expect(c.securityContext).not.toHaveProperty('capabilities.add');
      expect(pod.spec.securityContext).toMatchObject({ runAsUser: 65534, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(c.args!.some((a) => /^--api|dashboard|insecure=true$/.test(a))).toBe(false);
      const rules = (find(objs, 'ClusterRole') as FeatureObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }).rules;
      for (const r of rules) {
        expect(r.verbs.filter((v) => !['get', 'list', 'watch', 'update'].includes(v)), JSON.stringify(r)).toEqual([]);
        if (r.verbs.includes('update')) expect(r.resources.every((res) => res.endsWith('/status')), JSON.stringify(r)).toBe(true);
        expect(r.resources).not.toContain('*');
      }
      expect(rules.flatMap((r) => r.resources)).not.toContain('pods');
    }
    const ingressRules = JSON.stringify((find(featureObjects('ingress', ctxFor(on)), 'ClusterRole') as FeatureObject & { rules: unknown }).rules);
    expect(ingressRules).not.toContain('gateway.networking.k8s.io');
    const gatewayRules = JSON.stringify((find(featureObjects('gateway', ctxFor(on)), 'ClusterRole') as FeatureObject & { rules: unknown }).rules);
    expect(gatewayRules).not.toContain('ingresses');
  });

  it('ingress binds high ports; gateway binds 80/443 through the unprivileged-port sysctl, not a capability', () => {
    const ing = podOf(find(featureObjects('ingress', ctxFor(on)), 'Deployment'));
    expect(ing.spec.containers[0]!.ports!.map((p) => p.containerPort)).toEqual([8000, 8443, 8082]);
    expect(ing.spec.securityContext).not.toHaveProperty('sysctls');
    const gw = podOf(find(featureObjects('gateway', ctxFor(on)), 'Deployment'));
    expect(gw.spec.containers[0]!.ports!.map((p) => p.containerPort)).toEqual([80, 443, 8082]);
    expect(gw.spec.securityContext.sysctls).toEqual([{ name: 'net.ipv4.ip_unprivileged_port_start', value: '80' }]);
    expect(gw.spec.containers[0]!.args).toContain('--providers.kubernetesGateway=true');
    expect(gw.spec.containers[0]!.args).not.toContain('--providers.kubernetesIngress=true');
  });

  it('default-tls-secret: the Secret mounted (optional) and named as the default certificate; a new certificate rolls the pod', () => {
    const s = applyFeatureChanges(on, { 'ingress.default-tls-secret': 'site-cert' }, facts);
    const objs = featureObjects('ingress', { ...ctxFor(s), ingressTlsHash: 'aaaa' });
    const cm = find(objs, 'ConfigMap') as FeatureObject & { data: Record<string, string> };
    expect(cm.data['dynamic.yaml']).toMatch(/defaultCertificate:\s+certFile: \/etc\/traefik\/default-tls\/tls.crt\s+keyFile: \/etc\/traefik\/default-tls\/tls.key/);
    const pod = podOf(find(objs, 'Deployment'));
    expect(pod.spec.volumes).toContainEqual({ name: 'default-tls', secret: { secretName: 'site-cert', defaultMode: 0o440, optional: true } });
    expect(pod.spec.containers[0]!.args).toContain('--providers.file.filename=/etc/traefik/dynamic/dynamic.yaml');
    const rolled = podOf(find(featureObjects('ingress', { ...ctxFor(s), ingressTlsHash: 'bbbb' }), 'Deployment'));
    expect(rolled.metadata?.annotations?.['k8sd.io/config-hash']).not.toBe(pod.metadata?.annotations?.['k8sd.io/config-hash']);
  });

  it('enable-proxy-protocol: both entry points accept a PROXY header', () => {
    expect(traefikArgs('ingress', ctxFor(on)).some((a) => a.includes('proxyProtocol'))).toBe(false);
    const args = traefikArgs('ingress', ctxFor(applyFeatureChanges(on, { 'ingress.enable-proxy-protocol': true }, facts)));
    expect(args).toContain('--entryPoints.web.proxyProtocol.insecure=true');
    expect(args).toContain('--entryPoints.websecure.proxyProtocol.insecure=true');
  });

  it('gateway: the pinned CRDs first, labelled, then the GatewayClass for Traefik', () => {
    const objs = featureObjects('gateway', ctxFor(on));
    expect(objs[0]!.kind).toBe('CustomResourceDefinition');
    expect(objs[0]!.metadata?.labels?.[FEATURE_LABEL]).toBe('gateway');
    const cls = objs[objs.length - 1]! as FeatureObject & { spec: { controllerName: string } };
    expect([cls.kind, cls.metadata?.name, cls.spec.controllerName]).toEqual(['GatewayClass', GATEWAY_CLASS, 'traefik.io/gateway-controller']);
    expect(() => featureObjects('gateway', { ...ctxFor(on), gatewayApi: [] })).toThrow(/Gateway API CRDs/);
    expect(() => parseGatewayApi('kind: Deployment\nmetadata: {name: x}\n', 'f.yaml')).toThrow(/f.yaml: unexpected document \(kind Deployment\)/);
  });

  it('the pinned Gateway API file (when built) holds only CRDs of one bundle version', () => {
    const l = new Layout({ ...process.env, K8S_ROOT: '/tmp/none' });
    const file = l.componentBinary('gateway-api', 'gateway-api-standard.yaml');
    if (!existsSync(file)) return;
    const objs = parseGatewayApi(readFileSync(file, 'utf8'), file);
    expect(objs.length).toBeGreaterThanOrEqual(5);
    const version = l.componentVersion('gateway-api');
    for (const o of objs) expect(o.metadata?.annotations?.['gateway.networking.k8s.io/bundle-version']).toBe(version);
    expect(objs.map((o) => o.metadata?.name)).toContain('httproutes.gateway.networking.k8s.io');
  });

  it('label every object with its feature and stay within the kinds disabling looks for', () => {
    for (const name of ['ingress', 'gateway'] as const) {
      const kinds = new Set(FEATURE_KINDS[name].map((k) => `${k.apiVersion}/${k.kind}`));
      const s = applyFeatureChanges(on, { 'ingress.default-tls-secret': 'c' }, facts);
      for (const obj of featureObjects(name, ctxFor(s))) {
        expect(obj.metadata?.labels?.[FEATURE_LABEL], `${obj.kind} ${obj.metadata?.name}`).toBe(name);
        expect(kinds.has(`${obj.apiVersion}/${obj.kind}`), `${obj.kind} listed in FEATURE_KINDS.${name}`).toBe(true);
      }
    }
    expect(DATA_PLANE_NAME.ingress).not.toBe(DATA_PLANE_NAME.gateway);
  });
});

/** Every image reference in a feature's objects: pod templates, and pod specs kept as text in ConfigMaps (local-path's helper). */
function imagesIn(objs: FeatureObject[]): Array<{ image: string; pullPolicy: string; where: string }> {
  const out: Array<{ image: string; pullPolicy: string; where: string }> = [];
  const visit = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n) => visit(n, where));
    if (typeof node === 'string') {
      if (node.trim().startsWith('{') && node.includes('"image"')) visit(JSON.parse(node), `${where} (embedded)`);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const rec = node as Record<string, unknown>;
    if (typeof rec.image === 'string') out.push({ image: rec.image, pullPolicy: String(rec.imagePullPolicy), where });
    for (const v of Object.values(rec)) visit(v, where);
  };
  for (const o of objs) visit(o, `${o.kind} ${o.metadata?.name}`);
  return out;
}

describe('images stay honest (issue 12 item 7)', () => {
  it('every image any feature runs is listed by k8s list-images, has a rock and a recipe that builds it, and is never pulled', () => {
    const l = new Layout({ ...process.env, K8S_ROOT: '/tmp/none' });
    const listed = new Set(nodeImages(l));
    const all = applyFeatureChanges(base, { 'ingress.enabled': true, 'gateway.enabled': true, 'local-storage.enabled': true, 'metrics-server.enabled': true, 'ingress.default-tls-secret': 'c' }, facts);
    const ctx = ctxFor(all);
    ctx.versions = Object.fromEntries(Object.entries(FEATURE_IMAGES).map(([name, [component]]) => [name, l.componentVersion(component)])) as ManifestContext['versions'];
    const seen = new Set<string>();
    for (const feature of IMPLEMENTED_FEATURES) {
      for (const { image, pullPolicy, where } of imagesIn(featureObjects(feature, ctx))) {
        seen.add(image);
        expect(listed.has(image), `${feature}: ${where} runs ${image}, which k8s list-images does not list`).toBe(true);
        expect(pullPolicy, `${feature}: ${where} may pull ${image}`).toBe('Never');
        const match = /^([^/]+)\/([^:]+):(.+)$/.exec(image);
        expect(match?.[1], image).toBe(IMAGE_REGISTRY);
        const name = match![2]! as keyof typeof FEATURE_IMAGES;
        expect(FEATURE_IMAGES[name], `${image} has no entry in FEATURE_IMAGES`).toBeDefined();
        const [component, archive] = FEATURE_IMAGES[name];
        expect(existsSync(path.join(repo, 'rocks', name, 'rockcraft.yaml')), `rocks/${name}/rockcraft.yaml`).toBe(true);
        const rock = readFileSync(path.join(repo, 'rocks', name, 'rockcraft.yaml'), 'utf8');
        expect(rock, `rocks/${name}/rockcraft.yaml names the version`).toContain(match![3]!.replace(/^v/, ''));
        const recipe = path.join(repo, 'snap', 'components', component, 'build.sh');
        expect(existsSync(recipe), `${image}: recipe snap/components/${component}/build.sh`).toBe(true);
        const script = readFileSync(recipe, 'utf8');
        // The recipe writes this archive, as an OCI image with this name.
        expect(script, `${component}/build.sh writes ${archive}`).toContain(`bin/${archive}`);
        expect(script, `${component}/build.sh names ${IMAGE_REGISTRY}/${name}`).toContain(`${IMAGE_REGISTRY}/${name}:`);
        expect(script).toMatch(/\b(oci_archive|static_image) /);
      }
    }
    // Every listed feature image is used by some feature (no stale entries).
    for (const image of listed) if (image.startsWith(`${IMAGE_REGISTRY}/`)) expect(seen.has(image), `${image} is listed but no feature runs it`).toBe(true);
  });
});
