// `k8s status`: readiness, membership, versions and service states of this node.
import { existsSync } from 'node:fs';
import type { ClusterStatus, DatastoreReport, NodeInfo } from '../api/index.js';
import type { NodeContext } from './node-context.js';
import { ApiError } from './http.js';
import { apiserverGet, apiserverReady } from './kube.js';
import { featureStatuses } from './features/cluster-config.js';
import type { FeatureStatus } from '../api/index.js';
import { ServiceStatus } from '../services/manager.js';
import { goFipsModule } from '../crypto/go-buildinfo.js';
import { readWeakenedFlags } from './overrides.js';

/** The Go component binaries a node of this role runs, as [component, binary]. */
const GO_BINARIES: Array<[string, string]> = [
  ['etcd', 'etcd'],
  ['kubernetes', 'kubernetes'],
  ['containerd', 'containerd'],
  ['runc', 'runc'],
  ['cni', 'bridge'],
  ['flannel', 'flanneld'],
];

/** What status reads: the node context and the states of this node's services. */
export type StatusSources = NodeContext & { serviceStates(): Promise<ServiceStatus[]> };

function goModules(d: StatusSources): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [c, b] of GO_BINARIES) {
    const file = d.layout.componentBinary(c, b);
    if (!existsSync(file)) continue;
    try {
      out[c] = goFipsModule(file) ?? 'none';
    } catch (err) {
      out[c] = `unknown (${(err as Error).message})`;
    }
  }
  return out;
}

/** `k8s` asks who this node is: its membership record, or the host's name and address before it joins. */
export function nodeInfo(d: Pick<NodeContext, 'node' | 'host'>): NodeInfo {
  const node = d.node();
  return node
    ? { clustered: true, name: node.name, address: node.address, role: node.role }
    : { clustered: false, name: d.host.hostname(), address: d.host.defaultAddress() };
}

export async function clusterStatus(d: StatusSources): Promise<ClusterStatus> {
  const node = d.node();
  const l = d.layout;
  const versions: Record<string, string> = {
    kubernetes: safeVersion(() => l.componentVersion('kubernetes')),
    etcd: safeVersion(() => l.componentVersion('etcd')),
  };
  const fips: ClusterStatus['fips'] = d.fips.enabled
    ? { enabled: true, provider: d.fips.provider.name, version: d.fips.provider.version, requestedBy: d.fips.request.requestedBy, goModules: goModules(d) }
    : { enabled: false, requestedBy: [] };
  if (!node) {
    return { ready: false, 'node-name': d.host.hostname(), role: 'none', address: d.host.defaultAddress(), ha: false, datastore: { type: 'etcd', members: [] }, versions, services: [], 'node-ready': false, features: [], fips, 'insecure-overrides': [] };
  }
  const managed = existsSync(l.args('etcd'));
  // Workers have no admin.conf: they check the API (through their k8s-apiserver-proxy) as the kubelet.
  const kubeconfig = l.kubeconfig(node.role === 'worker' ? 'kubelet.conf' : 'admin.conf');
  const [apiReady, services, datastore, nodeReady, features] = await Promise.all([
    apiserverReady(kubeconfig, 1500),
    d.serviceStates(),
    (async () => {
      // Workers are not datastore clients.
      if (!d.etcd) return { type: managed ? 'etcd' : 'external', members: [], ...(node.role === 'worker' ? {} : { error: 'datastore not connected' }) } as ClusterStatus['datastore'];
      try {
        const members = (await d.etcd.members()).map((m) => ({
          name: m.name,
          address: (m.peerURLs[0] ?? '').replace(/^https:\/\//, '').replace(/:\d+$/, ''),
          role: m.isLearner ? ('learner' as const) : ('voter' as const),
        }));
        return { type: managed ? 'etcd' : 'external', members } as ClusterStatus['datastore'];
      } catch (err) {
        return { type: managed ? 'etcd' : 'external', members: [], error: (err as Error).message } as ClusterStatus['datastore'];
      }
    })(),
    nodeIsReady(kubeconfig, node.name),
    node.role === 'control-plane' ? featureStatuses(d).catch(() => [] as FeatureStatus[]) : Promise.resolve([] as FeatureStatus[]),
  ]);
  const voters = datastore.members.filter((m) => m.role === 'voter').length;
  // Ready as a user means it: the API answers, every service of the node runs, the node takes pods
  // (its Node object says Ready; that can lag a restart, hence the services), and every enabled
  // feature is up.
  const ready = apiReady && services.every((s) => s.state === 'running') && nodeReady && features.every((f) => !f.enabled || f.ready);
  versions.coredns = safeVersion(() => l.componentVersion('coredns'));
  versions.flannel = safeVersion(() => l.componentVersion('flannel'));
  versions['local-path-provisioner'] = safeVersion(() => l.componentVersion('local-path-provisioner'));
  versions['metrics-server'] = safeVersion(() => l.componentVersion('metrics-server'));
  versions.traefik = safeVersion(() => l.componentVersion('traefik'));
  versions['gateway-api'] = safeVersion(() => l.componentVersion('gateway-api'));
  return { ready, 'node-name': node.name, role: node.role, address: node.address, ha: voters >= 3, datastore, versions, services, 'node-ready': nodeReady, features, fips, 'insecure-overrides': readWeakenedFlags(l) };
}

/** Whether the Node object of this node has condition Ready=True. */
async function nodeIsReady(kubeconfig: string, name: string): Promise<boolean> {
  const r = await apiserverGet(kubeconfig, `/api/v1/nodes/${encodeURIComponent(name)}`, 1500);
  if (!r || r.status !== 200) return false;
  try {
    const n = JSON.parse(r.body) as { status?: { conditions?: Array<{ type: string; status: string }> } };
    return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  } catch {
    return false;
  }
}

function safeVersion(f: () => string): string {
  try {
    return f();
  } catch {
    return 'unknown';
  }
}


/** etcd's member list and each member's health (`k8s inspect`). */
export async function datastoreReport(d: StatusSources): Promise<DatastoreReport> {
  d.requireControlPlane();
  if (!d.etcd) throw new ApiError(503, 'the datastore is not connected on this node; check "k8s status"');
  const type = existsSync(d.layout.args('etcd')) ? 'etcd' : 'external';
  const members = await d.etcd.members();
  const health = await Promise.all(
    members.flatMap((m) => m.clientURLs).map(async (endpoint) => {
      try {
        const s = await d.etcd!.status(endpoint);
        return { endpoint, healthy: true, version: s.version, leader: s.leader };
      } catch (err) {
        return { endpoint, healthy: false, error: (err as Error).message };
      }
    }),
  );
  return { type, members, health };
}
