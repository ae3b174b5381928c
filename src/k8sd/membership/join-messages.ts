// The messages of a join and of the members API, as the joining node and the control plane
// exchange them (join-server.ts answers them; flows/join-*.ts and flows/admit-join.ts use them).
import type { ClusterConfig, PkiRecord } from '../../datastore/state.js';
import { KUBECONFIGS, type NodeIdentity } from '../../pki/table.js';
import type { PeerRecord } from '../cluster/peer.js';
import type { NodeFeatureView } from '../features/node.js';
import type { JoinRole } from './token.js';

/** Client certificates a worker gets from the control plane (kubeconfig names of the PKI table). */
export const WORKER_CLIENT_CERTS = ['kubelet.conf', 'proxy.conf', 'flannel.conf'] as const;
export type WorkerClientCert = (typeof WORKER_CLIENT_CERTS)[number];

/** The subject a worker puts in the request for a client certificate (the signer takes it from the PKI table anyway). */
export function workerClientSubject(cert: WorkerClientCert, nodeName: string): { commonName: string; organization?: string[] } {
  const spec = KUBECONFIGS.find((k) => k.name === cert)!;
  const identity: NodeIdentity = { hostname: nodeName, address: '', localAddresses: [], serviceIps: [], extraSans: [], clusterDomain: 'cluster.local' };
  return { commonName: spec.commonName(identity), ...(spec.organization ? { organization: spec.organization } : {}) };
}

export interface JoinRequestBody {
  token: { name: string; secret: string };
  role: JoinRole;
  node: { name: string; address: string; clusterCert: string };
  /** Worker only: PEM CSRs for kubelet.conf and proxy.conf (keys stay on the worker). */
  csrs?: Partial<Record<WorkerClientCert, string>>;
  /** Whether the joining k8sd runs in FIPS mode (a FIPS cluster admits only such nodes). */
  fips?: boolean;
}

export interface ControlPlaneJoinReply {
  role: 'control-plane';
  joinId: string;
  memberId: string;
  config: ClusterConfig;
  pki: PkiRecord;
  etcd: { initialCluster: string; peerUrl: string };
  members: PeerRecord[];
  extras: Record<string, unknown>;
}

/** What a worker needs of the cluster config. */
export interface WorkerClusterConfig {
  podCidr: string;
  serviceCidr: string;
  clusterDomain: string;
  dnsServiceIp?: string;
  /** The network feature is on: the worker runs flanneld. */
  network?: boolean;
  securePort: number;
  failCgroupV1: boolean;
  keyType: ClusterConfig['keyType'];
  leafLifetimeMs: number;
  /** The renewal policy the worker applies to its own certificates (absent from older control planes). */
  certificates?: ClusterConfig['certificates'];
}

export interface WorkerJoinReply {
  role: 'worker';
  certificates: Record<WorkerClientCert, string>;
  caCert: string;
  clientCaCert: string;
  config: WorkerClusterConfig;
  apiservers: string[];
  members: PeerRecord[];
}

export interface MembersReply {
  members: PeerRecord[];
  /** What workers need to know of the features (flanneld, the kubelet's DNS settings). */
  features?: NodeFeatureView;
  apiservers: string[];
  caCert: string;
  clientCaCert: string;
}

