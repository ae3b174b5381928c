// The NetworkPolicy enforcer k8sd runs on every node while the network feature is on: it reads
// pods, namespaces and NetworkPolicies as the network identity (flannel.conf, user k8sd:network),
// compiles the rules for this node's pods (compile.ts) and applies them with iptables-restore,
// only when they changed. Rules stay in place while k8sd is down (policies keep being enforced);
// they are removed when the network feature is disabled.
import type { CoreV1Api, NetworkingV1Api, V1NetworkPolicy, V1NetworkPolicyPeer, V1Pod } from '@kubernetes/client-node';
import { execa } from 'execa';
import { Logger } from '../../../log.js';
import { loadKubeconfig } from '../../kube.js';
import { CHAIN_PREFIX, compileNetworkPolicies, FORWARD_CHAIN, NamespaceView, NetworkPolicyView, PodView, PolicyPeer } from './compile.js';

const POLL_MS = 2000;

export function podView(p: V1Pod): PodView {
  const named: PodView['namedPorts'] = {};
  for (const c of p.spec?.containers ?? []) {
    for (const port of c.ports ?? []) {
      if (port.name) (named[port.name] ??= []).push([port.protocol ?? 'TCP', port.containerPort]);
    }
  }
  const ips = (p.status?.podIPs ?? []).map((x) => x.ip).filter((x): x is string => Boolean(x));
  if (!ips.length && p.status?.podIP) ips.push(p.status.podIP);
  return {
    uid: p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`,
    namespace: p.metadata?.namespace ?? 'default',
    name: p.metadata?.name ?? '',
    labels: p.metadata?.labels ?? {},
    ips: p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? [] : ips,
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    hostNetwork: p.spec?.hostNetwork === true,
    namedPorts: named,
  };
}

/** client-node's models rename an ingress rule's `from` to `_from`: back to the API's names. */
function peerView(p: V1NetworkPolicyPeer): PolicyPeer {
  return {
    ...(p.podSelector ? { podSelector: p.podSelector as PolicyPeer['podSelector'] } : {}),
    ...(p.namespaceSelector ? { namespaceSelector: p.namespaceSelector as PolicyPeer['namespaceSelector'] } : {}),
    ...(p.ipBlock ? { ipBlock: { cidr: p.ipBlock.cidr, except: p.ipBlock.except ?? [] } } : {}),
  };
}

export function policyView(p: V1NetworkPolicy): NetworkPolicyView {
  const spec = p.spec;
  return {
    namespace: p.metadata?.namespace ?? 'default',
    name: p.metadata?.name ?? '',
    podSelector: (spec?.podSelector ?? {}) as NetworkPolicyView['podSelector'],
    ...(spec?.policyTypes ? { policyTypes: spec.policyTypes } : {}),
    ...(spec?.ingress ? { ingress: spec.ingress.map((r) => ({ ...(r.ports ? { ports: r.ports } : {}), ...(r._from ? { from: r._from.map(peerView) } : {}) })) } : {}),
    ...(spec?.egress ? { egress: spec.egress.map((r) => ({ ...(r.ports ? { ports: r.ports } : {}), ...(r.to ? { to: r.to.map(peerView) } : {}) })) } : {}),
  };
}

async function iptables(args: string[], input?: string): Promise<{ ok: boolean; stderr: string; stdout: string }> {
  const r = await execa(args[0]!, args.slice(1), { reject: false, ...(input !== undefined ? { input } : {}) });
  return { ok: r.exitCode === 0, stderr: String(r.stderr ?? ''), stdout: String(r.stdout ?? '') };
}

export class NetworkPolicyEnforcer {
  private timer?: NodeJS.Timeout;
  private applied = '';
  private busy = false;
  private lastError = '';
  private api?: { core: CoreV1Api; net: NetworkingV1Api };

  constructor(
    private readonly node: string,
    private readonly kubeconfig: string,
    private readonly log: Logger,
  ) {}

  get running(): boolean {
    return Boolean(this.timer);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sync(), POLL_MS);
    void this.sync();
  }

  /** Stops polling; the rules stay (see removeRules). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async clients(): Promise<{ core: CoreV1Api; net: NetworkingV1Api }> {
    if (!this.api) {
      const { CoreV1Api: Core, NetworkingV1Api: Net } = await import('../../kube-api.js');
      const kc = await loadKubeconfig(this.kubeconfig);
      this.api = { core: kc.makeApiClient(Core), net: kc.makeApiClient(Net) };
    }
    return this.api;
  }

  async sync(): Promise<boolean> {
    if (this.busy) return false;
    this.busy = true;
    try {
      const { core, net } = await this.clients();
      const [pods, namespaces, policies] = await Promise.all([core.listPodForAllNamespaces(), core.listNamespace(), net.listNetworkPolicyForAllNamespaces()]);
      const compiled = compileNetworkPolicies(
        this.node,
        pods.items.map(podView),
        namespaces.items.map((n): NamespaceView => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} })),
        policies.items.map(policyView),
      );
      if (compiled.restore === this.applied && (await this.jumpInstalled())) return false;
      const r = await iptables(['iptables-restore', '--noflush'], compiled.restore);
      if (!r.ok) throw new Error(`iptables-restore refused the NetworkPolicy rules: ${r.stderr.trim()}`);
      await this.ensureJump();
      await this.deleteChains((await this.ourChains()).filter((c) => !compiled.chains.includes(c)));
      this.applied = compiled.restore;
      this.log.info('NetworkPolicy rules applied', { isolatedPods: compiled.isolated.length, chains: compiled.chains.length });
      this.lastError = '';
      return true;
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.log.warn('NetworkPolicy sync failed; retrying', { error: msg });
      this.lastError = msg;
      return false;
    } finally {
      this.busy = false;
    }
  }

  private async jumpInstalled(): Promise<boolean> {
    return (await iptables(['iptables', '-C', 'FORWARD', '-j', FORWARD_CHAIN])).ok;
  }

  /** Our chain first in FORWARD: before kube-proxy's and flanneld's accepts. */
  private async ensureJump(): Promise<void> {
    const rules = (await iptables(['iptables', '-S', 'FORWARD'])).stdout.split('\n');
    const first = rules.find((l) => l.startsWith('-A FORWARD'));
    if (first === `-A FORWARD -j ${FORWARD_CHAIN}`) return;
    while ((await iptables(['iptables', '-D', 'FORWARD', '-j', FORWARD_CHAIN])).ok) {
      // remove any copy further down
    }
    const r = await iptables(['iptables', '-I', 'FORWARD', '1', '-j', FORWARD_CHAIN]);
    if (!r.ok) throw new Error(`could not hook ${FORWARD_CHAIN} into FORWARD: ${r.stderr.trim()}`);
  }

  private async ourChains(): Promise<string[]> {
    const save = await iptables(['iptables-save', '-t', 'filter']);
    return save.stdout
      .split('\n')
      .filter((l) => l.startsWith(`:${CHAIN_PREFIX}`))
      .map((l) => l.slice(1).split(' ')[0]!);
  }

  private async deleteChains(chains: string[]): Promise<void> {
    for (const c of chains) await iptables(['iptables', '-F', c]);
    for (const c of chains) await iptables(['iptables', '-X', c]);
  }

  /** Removes every rule and chain of ours (the network feature was disabled). */
  async removeRules(): Promise<void> {
    while ((await iptables(['iptables', '-D', 'FORWARD', '-j', FORWARD_CHAIN])).ok) {
      // every copy
    }
    await this.deleteChains(await this.ourChains());
    this.applied = '';
  }
}
