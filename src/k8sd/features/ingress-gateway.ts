// The ingress and gateway features: one Traefik deployment each (same image, different providers
// and RBAC), an IngressClass that is the cluster default, and for gateway the pinned Gateway API
// CRDs plus a GatewayClass. Why two deployments and not one shared one: see docs/features.md.
import type { KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { readFileSync } from 'node:fs';
import { apiStatus } from '../membership/kube-clients.js';
import { addonTolerations, FEATURE_LABEL, FeatureObject, featureLabels, goDebug, ManifestContext, restrictedContainer, templateHash } from './manifest-parts.js';
import { imageRef } from '../../services/images.js';

export const INGRESS_CLASS = 'ck-ingress';
export const GATEWAY_CLASS = 'ck-gateway';
export const INGRESS_CONTROLLER = 'traefik.io/ingress-controller';
export const GATEWAY_CONTROLLER = 'traefik.io/gateway-controller';
/** Both data planes run in kube-system: the default TLS Secret lives there (as in Canonical Kubernetes). */
export const DATA_PLANE_NAMESPACE = 'kube-system';
/** Deployment, Service and ServiceAccount of each data plane. */
export const DATA_PLANE_NAME = { ingress: 'ck-ingress-traefik', gateway: 'ck-gateway-traefik' } as const;
/** The gateway-api recipe's output: the standard channel's CRDs. */
export const GATEWAY_API_COMPONENT = 'gateway-api';
export const GATEWAY_API_FILE = 'gateway-api-standard.yaml';

/**
 * Ports inside the pod. The ingress data plane binds high ports (nobody sees them: the Service maps
 * 80/443 to them). The gateway data plane binds 80 and 443 because Traefik matches a Gateway
 * listener's port against its entry points' ports, and users write `port: 80` in their Gateways;
 * the pod lowers net.ipv4.ip_unprivileged_port_start (a namespaced, "safe" sysctl) instead of
 * taking a capability, as CoreDNS does for port 53.
 */
export const DATA_PLANE_PORTS = {
  ingress: { web: 8000, websecure: 8443 },
  gateway: { web: 80, websecure: 443 },
} as const;
const PING_PORT = 8082;
const DYNAMIC_CONFIG = '/etc/traefik/dynamic/dynamic.yaml';
const DEFAULT_TLS_DIR = '/etc/traefik/default-tls';

type DataPlane = keyof typeof DATA_PLANE_NAME;

/** Traefik's static configuration as arguments: no dashboard, no API, no telemetry; ping on a port of its own. */
export function traefikArgs(plane: DataPlane, ctx: ManifestContext): string[] {
  const ports = DATA_PLANE_PORTS[plane];
  const args = [
    '--global.checkNewVersion=false',
    '--global.sendAnonymousUsage=false',
    '--log.level=INFO',
    `--entryPoints.web.address=:${ports.web}`,
    '--entryPoints.web.asDefault=true',
    `--entryPoints.websecure.address=:${ports.websecure}`,
    '--entryPoints.websecure.asDefault=true',
    // The readiness endpoint has an entry point of its own that no route is attached to.
    `--entryPoints.ping.address=:${PING_PORT}`,
    '--ping.entryPoint=ping',
  ];
  if (plane === 'ingress') {
    const s = ctx.settings.ingress;
    // Every Ingress is served on HTTPS too, with its own certificate or the default one.
    args.push('--entryPoints.websecure.http.tls=true', '--providers.kubernetesIngress=true');
    if (s['default-tls-secret']) args.push(`--providers.file.filename=${DYNAMIC_CONFIG}`);
    if (s['enable-proxy-protocol']) {
      // The load balancer in front is not known here: a PROXY header is accepted from any peer.
      args.push('--entryPoints.web.proxyProtocol.insecure=true', '--entryPoints.websecure.proxyProtocol.insecure=true');
    }
  } else {
    args.push('--providers.kubernetesGateway=true');
  }
  return args;
}

/** The file provider's configuration: the default TLS Secret's pair as the default certificate. */
export function ingressDynamicConfig(): string {
  return yaml.dump({ tls: { stores: { default: { defaultCertificate: { certFile: `${DEFAULT_TLS_DIR}/tls.crt`, keyFile: `${DEFAULT_TLS_DIR}/tls.key` } } } } });
}

const readOnly = ['get', 'list', 'watch'];

/** What each data plane reads and writes, nothing more (Traefik's informers and status updates). */
function rules(plane: DataPlane): Array<Record<string, string[]>> {
  const common = [
    // Secrets: Ingress spec.tls and Gateway listeners' certificateRefs name Secrets in any namespace.
    { apiGroups: [''], resources: ['services', 'secrets'], verbs: readOnly },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  ];
  if (plane === 'ingress') {
    return [
      ...common,
      // Nodes: the provider's cluster-scope informer, needed for IngressClasses.
      { apiGroups: [''], resources: ['nodes'], verbs: readOnly },
      { apiGroups: ['networking.k8s.io'], resources: ['ingresses', 'ingressclasses'], verbs: readOnly },
    ];
  }
  // The standard channel's kinds (TCPRoute and TLSRoute are experimental: not installed, not watched).
  const kinds = ['gatewayclasses', 'gateways', 'httproutes', 'grpcroutes', 'referencegrants', 'backendtlspolicies'];
  return [
    ...common,
    { apiGroups: [''], resources: ['namespaces', 'configmaps'], verbs: readOnly },
    { apiGroups: ['gateway.networking.k8s.io'], resources: kinds, verbs: readOnly },
    { apiGroups: ['gateway.networking.k8s.io'], resources: kinds.filter((k) => k !== 'referencegrants').map((k) => `${k}/status`), verbs: ['update'] },
  ];
}

function dataPlaneObjects(plane: DataPlane, ctx: ManifestContext): FeatureObject[] {
  const name = DATA_PLANE_NAME[plane];
  const ns = DATA_PLANE_NAMESPACE;
  const l = featureLabels(plane, name);
  const rbac = 'rbac.authorization.k8s.io';
  const ports = DATA_PLANE_PORTS[plane];
  const tlsSecret = plane === 'ingress' ? ctx.settings.ingress['default-tls-secret'] : '';
  const objects: FeatureObject[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, labels: l } },
    { apiVersion: `${rbac}/v1`, kind: 'ClusterRole', metadata: { name: `k8sd:${plane}`, labels: l }, rules: rules(plane) },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: `k8sd:${plane}`, labels: l },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: `k8sd:${plane}` },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
  ];
  const volumes: Array<Record<string, unknown>> = [{ name: 'tmp', emptyDir: {} }];
  const mounts: Array<Record<string, unknown>> = [{ name: 'tmp', mountPath: '/tmp' }];
  if (tlsSecret) {
    const data = { 'dynamic.yaml': ingressDynamicConfig() };
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-dynamic`, namespace: ns, labels: l }, data });
    volumes.push({ name: 'dynamic', configMap: { name: `${name}-dynamic` } }, { name: 'default-tls', secret: { secretName: tlsSecret, defaultMode: 0o440, optional: true } });
    mounts.push({ name: 'dynamic', mountPath: '/etc/traefik/dynamic', readOnly: true }, { name: 'default-tls', mountPath: DEFAULT_TLS_DIR, readOnly: true });
  }
  const args = traefikArgs(plane, ctx);
  objects.push(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns, labels: l },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'k8s-app': name } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } },
        template: {
          // New arguments or a new default certificate roll the pod (Traefik reads the files at start).
          metadata: { labels: l, annotations: { 'k8sd.io/config-hash': templateHash(JSON.stringify(args) + (ctx.ingressTlsHash ?? '')) } },
          spec: {
            serviceAccountName: name,
            priorityClassName: 'system-cluster-critical',
            tolerations: addonTolerations,
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            // fsGroup: the Secret's files (0440) are readable by the pod's group only.
            securityContext: {
              runAsUser: 65534,
              runAsGroup: 65534,
              fsGroup: 65534,
              runAsNonRoot: true,
              seccompProfile: { type: 'RuntimeDefault' },
              ...(plane === 'gateway' ? { sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: String(ports.web) }] } : {}),
            },
            containers: [
              {
                name: 'traefik',
                image: imageRef('traefik', ctx.versions.traefik),
                // Side-loaded on every node: no registry is needed.
                imagePullPolicy: 'Never',
                args,
                env: goDebug(ctx.fips),
                resources: { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '50Mi' } },
                ports: [
                  { name: 'web', containerPort: ports.web, protocol: 'TCP' },
                  { name: 'websecure', containerPort: ports.websecure, protocol: 'TCP' },
                  { name: 'ping', containerPort: PING_PORT, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/ping', port: 'ping' }, periodSeconds: 2, failureThreshold: 3 },
                livenessProbe: { httpGet: { path: '/ping', port: 'ping' }, periodSeconds: 10, failureThreshold: 3 },
                volumeMounts: mounts,
                securityContext: restrictedContainer,
              },
            ],
            volumes,
          },
        },
      },
    },
    // No load balancer is assumed: every node answers on the Service's node ports (as a bare node of Canonical Kubernetes).
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns, labels: l },
      spec: {
        type: 'NodePort',
        selector: { 'k8s-app': name },
        ports: [
          { name: 'http', port: 80, targetPort: 'web', protocol: 'TCP' },
          { name: 'https', port: 443, targetPort: 'websecure', protocol: 'TCP' },
        ],
      },
    },
  );
  return objects;
}

export function ingressObjects(ctx: ManifestContext): FeatureObject[] {
  return [
    ...dataPlaneObjects('ingress', ctx),
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: INGRESS_CLASS, labels: featureLabels('ingress', DATA_PLANE_NAME.ingress), annotations: { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
      spec: { controller: INGRESS_CONTROLLER },
    },
  ];
}

/** The Gateway API objects of the pinned release, labelled as the gateway feature's (CRDs first). */
export function gatewayObjects(ctx: ManifestContext): FeatureObject[] {
  if (!ctx.gatewayApi?.length) throw new Error(`gateway needs the Gateway API CRDs (${GATEWAY_API_FILE} of the ${GATEWAY_API_COMPONENT} recipe)`);
  return [
    ...ctx.gatewayApi,
    ...dataPlaneObjects('gateway', ctx),
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: GATEWAY_CLASS, labels: featureLabels('gateway', DATA_PLANE_NAME.gateway) },
      spec: { controllerName: GATEWAY_CONTROLLER },
    },
  ];
}

/** Kinds the Gateway API file may hold: anything else in it is refused rather than applied. */
const GATEWAY_API_KINDS = new Set(['CustomResourceDefinition']);

/** Parses the gateway-api recipe's file into objects labelled as the gateway feature's. */
export function parseGatewayApi(text: string, source: string): FeatureObject[] {
  const out: FeatureObject[] = [];
  for (const doc of yaml.loadAll(text)) {
    if (doc === null || doc === undefined) continue;
    const obj = doc as KubernetesObject & Record<string, unknown>;
    if (typeof obj !== 'object' || !obj.kind || !GATEWAY_API_KINDS.has(obj.kind) || !obj.metadata?.name) {
      throw new Error(`${source}: unexpected document (kind ${String((obj as { kind?: unknown }).kind)}); rebuild it with bash snap/components/build-all.sh ${GATEWAY_API_COMPONENT}`);
    }
    obj.metadata = { ...obj.metadata, labels: { ...(obj.metadata.labels ?? {}), [FEATURE_LABEL]: 'gateway' } };
    out.push(obj);
  }
  return out;
}

export function loadGatewayApi(file: string): FeatureObject[] {
  return parseGatewayApi(readFileSync(file, 'utf8'), file);
}

/** Marks a default TLS Secret that does not exist (yet): Traefik serves its own self-signed certificate meanwhile. */
export const TLS_SECRET_MISSING = 'missing';

/**
 * A hash of the default TLS Secret's pair ('' when none is configured, TLS_SECRET_MISSING when it
 * does not exist): the data plane's pod template carries it, so a new certificate rolls the pod.
 */
export async function ingressTlsHash(api: KubernetesObjectApi, secretName: string): Promise<string> {
  if (!secretName) return '';
  try {
    const live = (await api.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secretName, namespace: DATA_PLANE_NAMESPACE } })) as KubernetesObject & { data?: Record<string, string> };
    return templateHash(`${live.data?.['tls.crt'] ?? ''}\n${live.data?.['tls.key'] ?? ''}`);
  } catch (err) {
    if (apiStatus(err) === 404) return TLS_SECRET_MISSING;
    throw err;
  }
}

const CRD_WAIT_MS = 60_000;

/** Waits until the API server serves every CRD in `objects` (condition Established); throws naming the first that does not. */
export async function waitForCrdsEstablished(api: KubernetesObjectApi, objects: FeatureObject[]): Promise<true> {
  const deadline = Date.now() + CRD_WAIT_MS;
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    for (;;) {
      const live = (await api.read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: crd.metadata!.name! } })) as KubernetesObject & {
        status?: { conditions?: Array<{ type: string; status: string }> };
      };
      if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CustomResourceDefinition ${crd.metadata!.name} is not established after ${CRD_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return true;
}

/** The status line of a ready data plane: where it is reached, and the default certificate's state. */
export async function dataPlaneMessage(api: KubernetesObjectApi, plane: DataPlane, ctx: ManifestContext): Promise<string> {
  const svc = (await api.read({ apiVersion: 'v1', kind: 'Service', metadata: { name: DATA_PLANE_NAME[plane], namespace: DATA_PLANE_NAMESPACE } })) as KubernetesObject & {
    spec?: { ports?: Array<{ name?: string; nodePort?: number }> };
  };
  const port = (n: string): string => String(svc.spec?.ports?.find((p) => p.name === n)?.nodePort ?? '?');
  let message = `enabled, HTTP on node port ${port('http')}, HTTPS on node port ${port('https')}`;
  if (plane === 'ingress' && ctx.ingressTlsHash === TLS_SECRET_MISSING) {
    message += `; default TLS secret ${DATA_PLANE_NAMESPACE}/${ctx.settings.ingress['default-tls-secret']} not found, serving a self-signed certificate`;
  }
  return message;
}
