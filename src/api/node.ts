// Local API: this node, its cluster status, bootstrap, kubeconfig, services and datastore.
import type { WeakenedFlag } from '../config/overrides.js';
import type { FeatureStatusRecord } from '../datastore/state.js';
import type { ServiceStatus } from '../services/manager.js';
import { endpoint, noBody } from './endpoint.js';

export interface NodeInfo {
  clustered: boolean;
  name: string;
  address: string;
  role?: 'control-plane' | 'worker';
}

export interface FeatureStatus extends FeatureStatusRecord {
  name: string;
}

export interface DatastoreMember {
  name: string;
  address: string;
  role: 'voter' | 'learner';
}

export interface ClusterStatus {
  ready: boolean;
  'node-name': string;
  role: 'control-plane' | 'worker' | 'none';
  address: string;
  ha: boolean;
  datastore: { type: 'etcd' | 'external'; members: DatastoreMember[]; error?: string };
  versions: Record<string, string>;
  services: ServiceStatus[];
  /** This node's Node object reports Ready (kubelet up, pod network configured). */
  'node-ready': boolean;
  /** Control-plane nodes: each feature, enabled or not, and its message. */
  features: FeatureStatus[];
  fips: {
    enabled: boolean;
    provider?: string;
    version?: string;
    requestedBy: string[];
    /** FIPS mode: the Go Cryptographic Module (GOFIPS140) each Go component binary was built with, or "none". */
    goModules?: Record<string, string>;
  };
  /** Security-critical flags this node's overrides weaken, accepted under accept-insecure-node-args (empty: none). */
  'insecure-overrides': WeakenedFlag[];
}

export interface DatastoreReport {
  type: 'etcd' | 'external';
  members: Array<{ id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }>;
  health: Array<{ endpoint: string; healthy: boolean; version?: string; leader?: string; error?: string }>;
}

export interface BootstrapResult {
  name: string;
  address: string;
  seconds: number;
}

export const nodeInfo = endpoint<NodeInfo>()({ method: 'GET', path: '/1.0/k8sd/node', request: noBody });
export const clusterStatus = endpoint<ClusterStatus>()({ method: 'GET', path: '/1.0/k8sd/cluster', request: noBody });
export const bootstrap = endpoint<BootstrapResult>()({
  method: 'POST',
  path: '/1.0/k8sd/cluster',
  streams: true,
  request: (z) => z.object({
    /** Bootstrap configuration: YAML text, or the object itself. */
    config: z.union([z.string(), z.record(z.string(), z.unknown())]).optional(),
    name: z.string().optional(),
    address: z.string().optional(),
    timeoutSeconds: z.number().positive().optional(),
  }),
});
/** Query: `server` (an https URL) replaces the server of the admin kubeconfig. */
export const kubeconfig = endpoint<{ kubeconfig: string }>()({ method: 'GET', path: '/1.0/k8sd/kubeconfig', request: noBody });
export const services = endpoint<ServiceStatus[]>()({ method: 'GET', path: '/1.0/k8sd/services', request: noBody });
export const datastore = endpoint<DatastoreReport>()({ method: 'GET', path: '/1.0/k8sd/datastore', request: noBody });
