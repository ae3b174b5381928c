// Each feature's Kubernetes objects, in one place per feature. Typed as plain objects; the
// feature controller applies them server-side with its own field manager and a label naming
// the feature, so that disabling a feature can find and remove every object it made.
import path from 'node:path';
import { FeatureSettings, ImplementedFeature } from '../../config/features.js';
import { FLANNEL_USER } from '../../pki/table.js';
import { imageRef } from '../../services/images.js';

export { FEATURE_IMAGES, IMAGE_REGISTRY, imageRef } from '../../services/images.js';
import { gatewayObjects, ingressObjects } from './ingress-gateway.js';
import { FEATURE_LABEL, type FeatureObject, featureLabels, goDebug, addonTolerations, restrictedContainer, templateHash, type ManifestContext } from './manifest-parts.js';

export { FEATURE_LABEL, featureLabels, goDebug, addonTolerations, restrictedContainer, templateHash } from './manifest-parts.js';
export type { FeatureObject, ManifestContext, MetricsServerPki } from './manifest-parts.js';

export const FIELD_MANAGER = 'k8sd';

/** The recipe whose version a feature reports. */
export const FEATURE_COMPONENT: Record<ImplementedFeature, string> = {
  network: 'flannel',
  dns: 'coredns',
  'local-storage': 'local-path-provisioner',
  'metrics-server': 'metrics-server',
  'load-balancer': 'gobgp',
  ingress: 'traefik',
  gateway: 'traefik',
};

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
  'local-storage': [
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'local-path-storage' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'local-path-storage' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespace: 'local-path-storage' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', namespace: 'local-path-storage' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'local-path-storage' },
    { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
    { apiVersion: 'v1', kind: 'Namespace' },
  ],
  'metrics-server': [
    // The APIService first: with metrics-server gone it would make API discovery report errors.
    { apiVersion: 'apiregistration.k8s.io/v1', kind: 'APIService' },
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'Service', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'Secret', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespace: 'kube-system' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  ],
  'load-balancer': [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  ],
  ingress: [
    { apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass' },
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'Service', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
  ],
  gateway: [
    // The GatewayClass before the CRDs that define it; the CRDs last (removing them removes every Gateway and route).
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass' },
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'Service', namespace: 'kube-system' },
    { apiVersion: 'v1', kind: 'ServiceAccount', namespace: 'kube-system' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding' },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole' },
    { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' },
  ],
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
  const l = featureLabels('dns', 'kube-dns');
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
            annotations: { 'k8sd.io/corefile-hash': templateHash(corefile(s)) },
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
                // CoreDNS answers /ready once its API caches synced, a moment after it starts; the kubelet's
                // first probe usually comes before that, and the cluster has no DNS until the next one.
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 1 },
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
  const l = featureLabels('network', 'flannel');
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

export const LOCAL_STORAGE_NAMESPACE = 'local-path-storage';
export const LOCAL_STORAGE_CLASS = 'local-path';
export const LOCAL_STORAGE_PROVISIONER = 'rancher.io/local-path';

/** Where local volumes go on the node rendering the objects (its K8S_ROOT re-roots the configured path). */
export function localPathOnNode(ctx: ManifestContext): string {
  return path.join(ctx.root, ctx.settings['local-storage']['local-path']);
}

/** The provisioner's config.json: one path for every node. */
export function localPathConfig(ctx: ManifestContext): string {
  return JSON.stringify({ nodePathMap: [{ node: 'DEFAULT_PATH_FOR_NON_LISTED_NODES', paths: [localPathOnNode(ctx)] }] }, null, 2);
}

/**
 * The helper pod the provisioner starts on a volume's node to create or remove its directory.
 * It runs as root (the directories are root's) with one capability, DAC_OVERRIDE, so that it can
 * remove what a pod's non-root user wrote; nothing else, no service-account token.
 */
export function localPathHelperPod(ctx: ManifestContext): string {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'helper-pod', labels: { 'k8s-app': 'local-path-helper' } },
    spec: {
      priorityClassName: 'system-node-critical',
      automountServiceAccountToken: false,
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'helper-pod',
          image: imageRef('local-path-helper', ctx.versions['local-path-helper']),
          imagePullPolicy: 'Never',
          resources: { limits: { memory: '32Mi' }, requests: { cpu: '10m', memory: '8Mi' } },
          securityContext: {
            runAsUser: 0,
            runAsNonRoot: false,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'], add: ['DAC_OVERRIDE'] },
          },
        },
      ],
    },
  };
  return JSON.stringify(pod, null, 2);
}

const SETUP_SCRIPT = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n';
const TEARDOWN_SCRIPT = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n';

function localStorageObjects(ctx: ManifestContext): FeatureObject[] {
  const s = ctx.settings['local-storage'];
  const l = featureLabels('local-storage', 'local-path-provisioner');
  const ns = LOCAL_STORAGE_NAMESPACE;
  const sa = 'local-path-provisioner';
  const config = { 'config.json': localPathConfig(ctx), setup: SETUP_SCRIPT, teardown: TEARDOWN_SCRIPT, 'helperPod.yaml': localPathHelperPod(ctx) };
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      // The helper pods mount the volume's parent directory from the host: only the privileged
      // Pod Security level admits a hostPath volume. Nothing else runs in this namespace.
      metadata: {
        name: ns,
        labels: { ...l, 'pod-security.kubernetes.io/enforce': 'privileged', 'pod-security.kubernetes.io/audit': 'privileged', 'pod-security.kubernetes.io/warn': 'privileged' },
      },
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ns, labels: l } },
    // Helper pods: in its own namespace only.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'k8sd:local-path-provisioner', namespace: ns, labels: l },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'k8sd:local-path-provisioner', namespace: ns, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'k8sd:local-path-provisioner' },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }],
    },
    // PersistentVolumes are cluster-scoped; claims, nodes and classes are read to provision them.
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:local-path-provisioner', labels: l },
      rules: [
        { apiGroups: [''], resources: ['nodes', 'persistentvolumeclaims'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
        { apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:local-path-provisioner', labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'k8sd:local-path-provisioner' },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'local-path-config', namespace: ns, labels: l }, data: config },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'local-path-provisioner', namespace: ns, labels: l },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'k8s-app': 'local-path-provisioner' } },
        strategy: { type: 'Recreate' },
        template: {
          // The provisioner re-reads config.json from its mounted ConfigMap; the helper pod is read once.
          metadata: { labels: l, annotations: { 'k8sd.io/config-hash': templateHash(JSON.stringify(config)) } },
          spec: {
            serviceAccountName: sa,
            priorityClassName: 'system-cluster-critical',
            tolerations: addonTolerations,
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            securityContext: { runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'local-path-provisioner',
                image: imageRef('local-path-provisioner', ctx.versions['local-path-provisioner']),
                imagePullPolicy: 'Never',
                // Both files from the mounted ConfigMap: the provisioner needs no read access to ConfigMaps.
                args: ['start', '--config', '/etc/config/config.json', '--helper-pod-file', '/etc/config/helperPod.yaml', '--provisioner-name', LOCAL_STORAGE_PROVISIONER, '--service-account-name', sa, '--configmap-name', 'local-path-config'],
                env: [
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  { name: 'CONFIG_MOUNT_PATH', value: '/etc/config/' },
                  ...goDebug(ctx.fips),
                ],
                resources: { limits: { memory: '128Mi' }, requests: { cpu: '10m', memory: '24Mi' } },
                volumeMounts: [{ name: 'config', mountPath: '/etc/config', readOnly: true }],
                securityContext: restrictedContainer,
              },
            ],
            volumes: [{ name: 'config', configMap: { name: 'local-path-config' } }],
          },
        },
      },
    },
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: LOCAL_STORAGE_CLASS, labels: l, annotations: { 'storageclass.kubernetes.io/is-default-class': String(s.default) } },
      provisioner: LOCAL_STORAGE_PROVISIONER,
      reclaimPolicy: s['reclaim-policy'],
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: false,
    },
  ];
}

export const METRICS_SERVER_SERVICE = 'metrics-server';
export const METRICS_SERVER_TLS_SECRET = 'metrics-server-tls';
const METRICS_SERVER_PORT = 10250;

/** DNS names the apiserver may use for metrics-server's Service (it dials <service>.<namespace>.svc). */
export function metricsServerDnsNames(clusterDomain: string): string[] {
  const n = `${METRICS_SERVER_SERVICE}.kube-system`;
  return [`${n}.svc`, `${n}.svc.${clusterDomain}`, n, METRICS_SERVER_SERVICE];
}

function metricsServerObjects(ctx: ManifestContext): FeatureObject[] {
  const pki = ctx.metricsServer;
  if (!pki) throw new Error('metrics-server needs its TLS material');
  const l = featureLabels('metrics-server', 'metrics-server');
  const ns = 'kube-system';
  const name = 'metrics-server';
  const rbac = 'rbac.authorization.k8s.io';
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns, labels: l } },
    // Lets view/edit/admin read metrics (kubectl top for ordinary users).
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRole',
      metadata: {
        name: 'system:aggregated-metrics-reader',
        labels: { ...l, 'rbac.authorization.k8s.io/aggregate-to-view': 'true', 'rbac.authorization.k8s.io/aggregate-to-edit': 'true', 'rbac.authorization.k8s.io/aggregate-to-admin': 'true' },
      },
      rules: [{ apiGroups: ['metrics.k8s.io'], resources: ['pods', 'nodes'], verbs: ['get', 'list', 'watch'] }],
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRole',
      metadata: { name: 'k8sd:metrics-server', labels: l },
      rules: [
        { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
        { apiGroups: [''], resources: ['pods', 'nodes'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:metrics-server', labels: l },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'k8sd:metrics-server' },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
    // Delegated authentication and authorization of the apiserver's proxied requests.
    {
      apiVersion: `${rbac}/v1`,
      kind: 'ClusterRoleBinding',
      metadata: { name: 'k8sd:metrics-server:auth-delegator', labels: l },
      roleRef: { apiGroup: rbac, kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
    // The requestheader (front-proxy) CA and allowed names from kube-system/extension-apiserver-authentication.
    {
      apiVersion: `${rbac}/v1`,
      kind: 'RoleBinding',
      metadata: { name: 'k8sd:metrics-server:auth-reader', namespace: ns, labels: l },
      roleRef: { apiGroup: rbac, kind: 'Role', name: 'extension-apiserver-authentication-reader' },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: METRICS_SERVER_TLS_SECRET, namespace: ns, labels: l },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(pki.cert), 'tls.key': b64(pki.key), 'ca.crt': b64(pki.ca) },
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'metrics-server-kubelet-ca', namespace: ns, labels: l }, data: { 'ca.crt': pki.kubeletCa } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns, labels: l },
      spec: {
        replicas: 1,
        selector: { matchLabels: { 'k8s-app': 'metrics-server' } },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } },
        template: {
          // New serving or kubelet CA material rolls the pod.
          metadata: { labels: l, annotations: { 'k8sd.io/tls-hash': templateHash(pki.cert + pki.kubeletCa) } },
          spec: {
            serviceAccountName: name,
            priorityClassName: 'system-cluster-critical',
            tolerations: addonTolerations,
            nodeSelector: { 'kubernetes.io/os': 'linux' },
            // fsGroup: the Secret's files (0440) are readable by the pod's group only.
            securityContext: { runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name,
                image: imageRef('metrics-server', ctx.versions['metrics-server']),
                imagePullPolicy: 'Never',
                args: metricsServerArgs(),
                env: goDebug(ctx.fips),
                resources: { limits: { memory: '200Mi' }, requests: { cpu: '100m', memory: '40Mi' } },
                ports: [{ name: 'https', containerPort: METRICS_SERVER_PORT, protocol: 'TCP' }],
                readinessProbe: { httpGet: { path: '/readyz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 5, failureThreshold: 3 },
                livenessProbe: { httpGet: { path: '/livez', port: 'https', scheme: 'HTTPS' }, periodSeconds: 10, failureThreshold: 3 },
                volumeMounts: [
                  { name: 'tls', mountPath: '/etc/metrics-server/tls', readOnly: true },
                  { name: 'kubelet-ca', mountPath: '/etc/metrics-server/kubelet-ca', readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
                securityContext: restrictedContainer,
              },
            ],
            volumes: [
              { name: 'tls', secret: { secretName: METRICS_SERVER_TLS_SECRET, defaultMode: 0o440 } },
              { name: 'kubelet-ca', configMap: { name: 'metrics-server-kubelet-ca' } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: METRICS_SERVER_SERVICE, namespace: ns, labels: l },
      spec: { selector: { 'k8s-app': 'metrics-server' }, ports: [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }] },
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: 'v1beta1.metrics.k8s.io', labels: l },
      spec: {
        group: 'metrics.k8s.io',
        version: 'v1beta1',
        groupPriorityMinimum: 100,
        versionPriority: 100,
        insecureSkipTLSVerify: false,
        caBundle: b64(pki.ca),
        service: { name: METRICS_SERVER_SERVICE, namespace: ns, port: 443 },
      },
    },
  ];
}

/**
 * metrics-server's arguments. Kubelets are verified with --kubelet-certificate-authority (never
 * --kubelet-insecure-tls); clients of its own API come through the apiserver's front proxy, whose
 * CA and allowed names metrics-server reads from extension-apiserver-authentication.
 */
export function metricsServerArgs(): string[] {
  return [
    `--secure-port=${METRICS_SERVER_PORT}`,
    '--cert-dir=/tmp',
    '--tls-cert-file=/etc/metrics-server/tls/tls.crt',
    '--tls-private-key-file=/etc/metrics-server/tls/tls.key',
    '--kubelet-certificate-authority=/etc/metrics-server/kubelet-ca/ca.crt',
    '--kubelet-preferred-address-types=InternalIP,Hostname,ExternalIP',
    '--kubelet-use-node-status-port',
    '--metric-resolution=15s',
  ];
}

export function featureObjects(name: ImplementedFeature, ctx: ManifestContext): FeatureObject[] {
  switch (name) {
    case 'dns':
      return dnsObjects(ctx);
    case 'network':
      return networkObjects();
    case 'local-storage':
      return localStorageObjects(ctx);
    case 'metrics-server':
      return metricsServerObjects(ctx);
    case 'load-balancer':
      return loadBalancerObjects();
    case 'ingress':
      return ingressObjects(ctx);
    case 'gateway':
      return gatewayObjects(ctx);
  }
}

/** The ClusterRole of k8sd's load-balancer loop (see load-balancer.ts). */
export const LOAD_BALANCER_ROLE = 'k8sd:load-balancer';

/**
 * The load balancer runs inside k8sd on control-plane nodes (no pod, no image): it reads Services
 * and Nodes and writes the addresses it assigns into Services' status, as the node's network
 * identity (user k8sd:network). Nothing else: no Secrets, no writes to a Service's spec.
 */
function loadBalancerObjects(): FeatureObject[] {
  const l = { [FEATURE_LABEL]: 'load-balancer' };
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: LOAD_BALANCER_ROLE, labels: l },
      rules: [
        { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['services/status'], verbs: ['update', 'patch'] },
        { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: LOAD_BALANCER_ROLE, labels: l },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: LOAD_BALANCER_ROLE },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: FLANNEL_USER }],
    },
  ];
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

