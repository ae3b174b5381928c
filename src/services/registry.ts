// Every service a node can run, in one list: which roles run it, in what order it starts, what it
// listens on and which binaries it needs. Bootstrap, both joins, restarts, status and removal all
// read their service lists from here. (Argument builders: specs.ts and worker-specs.ts.)
import { ComponentBinary } from './binaries.js';
import { ServiceId } from './specs.js';
import { KUBE_PROXY_HEALTHZ_PORT, KUBE_PROXY_METRICS_PORT, KUBELET_HEALTHZ_PORT, KUBELET_PORT } from './worker-specs.js';

export type NodeRole = 'control-plane' | 'worker';

/** Where a port listens: the node's address, loopback, or every address. */
export type PortScope = 'node' | 'local' | 'any';

export interface ServiceEntry {
  id: ServiceId;
  /** Control-plane services run only on control-plane nodes; node services run on every node. */
  tier: 'control-plane' | 'node';
  roles: readonly NodeRole[];
  /** Start order (lower first); stops run the other way round. */
  order: number;
  /** Runs only while this feature is enabled. */
  feature?: 'network';
  /** Only with k8sd's own etcd (not with an external datastore). */
  managedDatastoreOnly?: boolean;
  ports: ReadonlyArray<readonly [PortScope, number | 'secure-port', string]>;
  binaries: readonly ComponentBinary[];
}

const CNI_PLUGINS: ComponentBinary[] = [['cni', 'bridge'], ['cni', 'host-local'], ['cni', 'loopback'], ['cni', 'portmap']];

export const SERVICE_REGISTRY: readonly ServiceEntry[] = [
  { id: 'etcd', tier: 'control-plane', roles: ['control-plane'], order: 10, managedDatastoreOnly: true, ports: [], binaries: [['etcd', 'etcd']] },
  { id: 'kube-apiserver', tier: 'control-plane', roles: ['control-plane'], order: 20, ports: [], binaries: [['kubernetes', 'kube-apiserver']] },
  { id: 'kube-controller-manager', tier: 'control-plane', roles: ['control-plane'], order: 30, ports: [['local', 10257, 'kube-controller-manager']], binaries: [['kubernetes', 'kube-controller-manager']] },
  { id: 'kube-scheduler', tier: 'control-plane', roles: ['control-plane'], order: 40, ports: [['local', 10259, 'kube-scheduler']], binaries: [['kubernetes', 'kube-scheduler']] },
  {
    id: 'containerd',
    tier: 'node',
    roles: ['control-plane', 'worker'],
    order: 50,
    ports: [],
    binaries: [['containerd', 'containerd'], ['containerd', 'containerd-shim-runc-v2'], ['containerd', 'ctr'], ['runc', 'runc'], ...CNI_PLUGINS],
  },
  { id: 'k8s-apiserver-proxy', tier: 'node', roles: ['worker'], order: 55, ports: [['local', 'secure-port', 'k8s-apiserver-proxy']], binaries: [['k8s', 'k8s-apiserver-proxy']] },
  {
    id: 'kubelet',
    tier: 'node',
    roles: ['control-plane', 'worker'],
    order: 60,
    ports: [['any', KUBELET_PORT, 'kubelet'], ['local', KUBELET_HEALTHZ_PORT, 'kubelet healthz']],
    binaries: [['kubernetes', 'kubelet']],
  },
  { id: 'flanneld', tier: 'node', roles: ['control-plane', 'worker'], order: 65, feature: 'network', ports: [], binaries: [['flannel', 'flanneld']] },
  {
    id: 'kube-proxy',
    tier: 'node',
    roles: ['control-plane', 'worker'],
    order: 70,
    ports: [['local', KUBE_PROXY_HEALTHZ_PORT, 'kube-proxy healthz'], ['local', KUBE_PROXY_METRICS_PORT, 'kube-proxy metrics']],
    binaries: [['kubernetes', 'kube-proxy']],
  },
];

export interface ServiceFilter {
  role: NodeRole;
  tier?: 'control-plane' | 'node';
  /** Include services of the network feature (default: yes). */
  network?: boolean;
  /** k8sd runs etcd itself (default: yes). */
  managedDatastore?: boolean;
}

/** The entries a node of this shape runs, in start order. */
export function servicesFor(f: ServiceFilter): ServiceEntry[] {
  return SERVICE_REGISTRY.filter(
    (e) =>
      e.roles.includes(f.role) &&
      (!f.tier || e.tier === f.tier) &&
      (!e.feature || f.network !== false) &&
      (!e.managedDatastoreOnly || f.managedDatastore !== false),
  ).sort((a, b) => a.order - b.order);
}

export function serviceIds(f: ServiceFilter): ServiceId[] {
  return servicesFor(f).map((e) => e.id);
}
