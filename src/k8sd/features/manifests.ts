// Each feature's Kubernetes objects, in one place per feature. Typed as plain objects; the
// feature controller applies them server-side with its own field manager and a label naming
// the feature, so that disabling a feature can find and remove every object it made.
import type { KubernetesObject } from '@kubernetes/client-node';
import { FeatureSettings, ImplementedFeature } from '../../config/features.js';
import { FLANNEL_USER } from '../../pki/table.js';

export const FEATURE_LABEL = 'k8sd.io/feature';
export const FIELD_MANAGER = 'k8sd';
export const IMAGE_REGISTRY = 'k8s-ts.local';

/** Images the features run: name → [component recipe, OCI archive in its build]. */
export const FEATURE_IMAGES = {
  coredns: ['coredns', 'coredns.tar'],
} as const;

export interface ManifestContext {
  settings: FeatureSettings;
  /** Versions of the image recipes (their image tags). */
  versions: Record<keyof typeof FEATURE_IMAGES, string>;
  /** FIPS mode: the Go binaries in the images run with fips140=on. */
  fips: boolean;
}

export type FeatureObject = KubernetesObject & Record<string, unknown>;

/** Every kind a feature may create, so that disabling it can find objects by label (namespaced kinds first). */
export const FEATURE_KINDS: Record<ImplementedFeature, Array<{ apiVersion: string; kind: string; namespace?: string }>> = {
  dns: [
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'Service', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  ],
  network: [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  ],
};

export function imageRef(name: keyof typeof FEATURE_IMAGES, version: string): string {
  return `${IMAGE_REGISTRY}/${name}:${version}`;
}

const labels = (feature: ImplementedFeature, app: string): Record<string, string> => ({ [FEATURE_LABEL]: feature, 'k8s-app': app });

const goDebug = (fips: boolean): Array<{ name: string; value: string }> => [{ name: 'GODEBUG', value: fips ? 'fips140=on' : 'fips140=off' }];

/** Tolerations of cluster add-ons: they run on control-plane nodes too, tainted or not. */
const addonTolerations = [
  { key: 'CriticalAddonsOnly', operator: 'Exists' },
  { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
];

/** Restricted-profile container settings (Pod Security "restricted"), for containers that need no privilege. */
const restrictedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * CoreDNS listens on 53 in its pod, as non-root: the pod lowers net.ipv4.ip_unprivileged_port_start
 * (a namespaced, "safe" sysctl) instead of granting a capability. Port 53 matters: NetworkPolicies
 * that allow DNS name port 53, the pod's port after the Service's DNAT.
 */
export const COREDNS_PORT = 53;

export function corefile(s: FeatureSettings['dns']): string {
  const upstreams = s['upstream-nameservers'].join(' ');
  return `.:${COREDNS_PORT} {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes ${s['cluster-domain']} in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    forward . ${upstreams} {
        max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
`;
}

function dnsObjects(ctx: ManifestContext): FeatureObject[] {
  const s = ctx.settings.dns;
  const l = labels('dns', 'kube-dns');
  const ns = 'kube-system';
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns, labels: l } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:coredns', labels: l },
      rules: [
        { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:coredns', labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'k8sd:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: ns, labels: l }, data: { Corefile: corefile(s) } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: ns, labels: l },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: {
            labels: l,
            // A new Corefile rolls the pods (the reload plugin would take up to 30 s otherwise).
            annotations: { 'k8sd.io/corefile-hash': hash(corefile(s)) },
          },
          spec: {
            serviceAccountName: 'coredns',
            priorityClassName: 'system-cluster-critical',
            dnsPolicy: 'Default',
            automountServiceAccountToken: true,
            tolerations: addonTolerations,
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            securityContext: {
              runAsUser: 65534,
              runAsGroup: 65534,
              runAsNonRoot: true,
              seccompProfile: { type: 'RuntimeDefault' },
              sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: String(COREDNS_PORT) }],
            },
            containers: [
              {
                name: 'coredns',
                image: imageRef('coredns', ctx.versions.coredns),
                // Side-loaded on every node: no registry is needed.
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                env: goDebug(ctx.fips),
                resources: { limits: { memory: '170Mi' }, requests: { cpu: '100m', memory: '70Mi' } },
                volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
                ports: [
                  { name: 'dns', containerPort: COREDNS_PORT, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: COREDNS_PORT, protocol: 'TCP' },
                  { name: 'metrics', containerPort: 9153, protocol: 'TCP' },
                ],
                livenessProbe: { httpGet: { path: '/health', port: 8080 }, initialDelaySeconds: 10, timeoutSeconds: 5, failureThreshold: 5 },
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                securityContext: restrictedContainer,
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: ns, labels: { ...l, 'kubernetes.io/name': 'CoreDNS' } },
      spec: {
        selector: { 'k8s-app': 'kube-dns' },
        clusterIP: s['service-ip'],
        ports: [
          { name: 'dns', port: 53, targetPort: COREDNS_PORT, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: COREDNS_PORT, protocol: 'TCP' },
          { name: 'metrics', port: 9153, targetPort: 9153, protocol: 'TCP' },
        ],
      },
    },
  ];
}

/**
 * The cluster-wide half of the network feature: the identity flanneld and k8sd's NetworkPolicy
 * enforcer use on every node (user k8sd:network, flannel.conf). The node half, flanneld (VXLAN)
 * and the enforcer (iptables), runs on each node under k8sd.
 */
function networkObjects(): FeatureObject[] {
  const l = labels('network', 'flannel');
  return [
    // flanneld reads nodes, annotates its own with its VXLAN endpoint and clears NetworkUnavailable
    // (the Node authorizer does not let a kubelet identity list nodes); the enforcer reads pods,
    // namespaces and NetworkPolicies. Nothing else.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:network', labels: l },
      rules: [
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
        { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
        { apiGroups: [''], resources: ['pods', 'namespaces'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:network', labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'k8sd:network' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: FLANNEL_USER }],
    },
  ];
}

export function featureObjects(name: ImplementedFeature, ctx: ManifestContext): FeatureObject[] {
  return name === 'dns' ? dnsObjects(ctx) : networkObjects();
}

/** Short stable hash (FNV-1a) for pod-template annotations. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
