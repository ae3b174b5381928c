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
  'kube-network-policies': ['kube-network-policies', 'kube-network-policies.tar'],
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
    { apiVersion: 'apps/v1', kind: 'DaemonSet', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system' },
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

/** CoreDNS listens on an unprivileged port inside its pod; the Service maps 53 to it. */
export const COREDNS_PORT = 1053;

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
            securityContext: { runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
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
 * The cluster-wide half of the network feature: the NetworkPolicy enforcer (kube-network-policies,
 * nftables + NFQUEUE) on every node. The node half, flanneld (VXLAN between nodes), is a host
 * service k8sd runs on each node.
 */
function networkObjects(ctx: ManifestContext): FeatureObject[] {
  const l = labels('network', 'kube-network-policies');
  const fl = labels('network', 'flannel');
  const ns = 'kube-system';
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'kube-network-policies', namespace: ns, labels: l } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:kube-network-policies', labels: l },
      rules: [
        { apiGroups: [''], resources: ['pods', 'namespaces', 'nodes'], verbs: ['list', 'watch'] },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:kube-network-policies', labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'k8sd:kube-network-policies' },
      subjects: [{ kind: 'ServiceAccount', name: 'kube-network-policies', namespace: ns }],
    },
    // flanneld on every node (user k8sd:network, flannel.conf): reads nodes, annotates its own with
    // its VXLAN endpoint and clears NetworkUnavailable. The Node authorizer does not let a kubelet
    // identity list nodes, so flanneld has this identity instead.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:flannel', labels: fl },
      rules: [
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
        { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:flannel', labels: fl },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'k8sd:flannel' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: FLANNEL_USER }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'kube-network-policies', namespace: ns, labels: l },
      spec: {
        selector: { matchLabels: { 'k8s-app': 'kube-network-policies' } },
        updateStrategy: { type: 'RollingUpdate' },
        template: {
          metadata: { labels: l },
          spec: {
            hostNetwork: true,
            serviceAccountName: 'kube-network-policies',
            priorityClassName: 'system-node-critical',
            tolerations: [{ operator: 'Exists' }],
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            containers: [
              {
                name: 'kube-network-policies',
                image: imageRef('kube-network-policies', ctx.versions['kube-network-policies']),
                imagePullPolicy: 'Never',
                args: [
                  '--hostname-override=$(NODE_NAME)',
                  '--nfqueue-id=98',
                  // containerd's NRI is off on our nodes; pod IPs come from the API.
                  '--disable-nri=true',
                  // Kernels from 6.12 on fixed the conntrack race this works around.
                  '--netfilter-bug-1766-fix=false',
                  '--metrics-bind-address=127.0.0.1:9080',
                  '--v=1',
                ],
                env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }, ...goDebug(ctx.fips)],
                resources: { requests: { cpu: '50m', memory: '30Mi' }, limits: { memory: '100Mi' } },
                // nftables rules and an NFQUEUE listener in the node's network namespace: NET_ADMIN only.
                securityContext: { privileged: false, capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] }, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
              },
            ],
          },
        },
      },
    },
  ];
}

export function featureObjects(name: ImplementedFeature, ctx: ManifestContext): FeatureObject[] {
  return name === 'dns' ? dnsObjects(ctx) : networkObjects(ctx);
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
