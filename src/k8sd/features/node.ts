// The node half of the features, run by k8sd on every node: flanneld (the network feature's
// VXLAN) and the kubelet's DNS settings (the dns feature). Control-plane nodes read the wanted
// state from the cluster config; workers get it from a control-plane node with the member list.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import yaml from 'js-yaml';
import { execa } from 'execa';
import { ClusterConfig, featuresOf } from '../../datastore/state.js';
import { commitFileSet, writeFileAtomic } from '../../host/files.js';
import { Host } from '../../services/host.js';
import { Logger } from '../../log.js';
import { kubeletConfigPath } from '../../services/worker-specs.js';
import { networkFiles } from '../membership/node-components.js';
import { NetworkPolicyEnforcer } from './netpol/enforcer.js';

/** One enforcer per node root (several nodes can share a process only in tests). */
const enforcers = new Map<string, NetworkPolicyEnforcer>();

/** Stops the NetworkPolicy enforcer of this node (k8sd stops; its rules stay in force). */
export function stopNetworkPolicies(root: string): void {
  enforcers.get(root)?.stop();
}

/** What a node needs to know of the features. */
export interface NodeFeatureView {
  network: boolean;
  /** Set while the dns feature is on: the kubelet points pods at it. */
  dnsServiceIp?: string;
  clusterDomain: string;
  podCidr: string;
}

export function nodeFeatureView(c: ClusterConfig): NodeFeatureView {
  const f = featuresOf(c);
  return { network: f.network.enabled, ...(f.dns.enabled ? { dnsServiceIp: f.dns['service-ip'] } : {}), clusterDomain: f.dns['cluster-domain'], podCidr: c.podCidr };
}

/** Brings this node's flanneld and kubelet DNS settings in line with the view. Returns what changed. */
export async function syncNodeFeatures(host: Host, log: Logger, node: { name: string; address: string }, view: NodeFeatureView): Promise<string[]> {
  const l = host.layout;
  // Nothing to do before the node components are installed (or after they were removed).
  if (!existsSync(l.args('kubelet'))) return [];
  const changed: string[] = [];
  const flannelOn = existsSync(l.args('flanneld'));
  if (view.network && !flannelOn) {
    commitFileSet(networkFiles({ layout: l, nodeName: node.name, nodeAddress: node.address, podCidr: view.podCidr }), l.k8sdStateDir);
    await host.services.start('flanneld');
    changed.push('flanneld started');
  } else if (!view.network && flannelOn) {
    await host.services.stop('flanneld');
    for (const f of [l.args('flanneld'), l.args('flanneld-env'), l.flannelConfFile, l.flannelSubnetFile]) rmSync(f, { force: true });
    // flanneld leaves its VXLAN device and routes behind on purpose (restarts keep traffic flowing).
    await execa('ip', ['link', 'del', 'flannel.1'], { reject: false });
    changed.push('flanneld stopped');
  } else if (view.network) {
    const st = await host.services.status('flanneld');
    if (st.state === 'stopped') {
      await host.services.start('flanneld');
      changed.push('flanneld started');
    }
  }
  await syncNetworkPolicies(host, log, node, view.network);
  if (await syncKubeletDns(host, view)) changed.push('kubelet DNS settings');
  if (changed.length) log.info('node features synced', { changed });
  return changed;
}

async function syncNetworkPolicies(host: Host, log: Logger, node: { name: string }, on: boolean): Promise<void> {
  const l = host.layout;
  let e = enforcers.get(l.root);
  if (on && existsSync(l.kubeconfig('flannel.conf'))) {
    if (!e) {
      e = new NetworkPolicyEnforcer(node.name, l.kubeconfig('flannel.conf'), log);
      enforcers.set(l.root, e);
    }
    e.start();
  } else if (!on) {
    // Also after a restart with the feature off: rules a previous k8sd left must go.
    e ??= new NetworkPolicyEnforcer(node.name, l.kubeconfig('flannel.conf'), log);
    e.stop();
    await e.removeRules();
    enforcers.delete(l.root);
  }
}

/** Rewrites clusterDNS/clusterDomain in the kubelet config and restarts the kubelet when they differ. */
async function syncKubeletDns(host: Host, view: NodeFeatureView): Promise<boolean> {
  const file = kubeletConfigPath(host.layout);
  if (!existsSync(file)) return false;
  const doc = yaml.load(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const want = view.dnsServiceIp ? [view.dnsServiceIp] : undefined;
  const have = doc.clusterDNS as string[] | undefined;
  if (JSON.stringify(want) === JSON.stringify(have) && doc.clusterDomain === view.clusterDomain) return false;
  if (want) doc.clusterDNS = want;
  else delete doc.clusterDNS;
  doc.clusterDomain = view.clusterDomain;
  writeFileAtomic(file, yaml.dump(doc, { lineWidth: -1 }), 0o600);
  await host.services.restart('kubelet');
  return true;
}

/** FLANNEL_MTU from flanneld's subnet file, once it wrote one. */
export function flannelMtu(subnetFile: string): number | undefined {
  if (!existsSync(subnetFile)) return undefined;
  const m = /^FLANNEL_MTU=(\d+)$/m.exec(readFileSync(subnetFile, 'utf8'));
  return m ? Number(m[1]) : undefined;
}
