// Signs the certificates kubelets ask for through CSRs, on control-plane nodes: serving
// certificates (kubernetes.io/kubelet-serving) and renewals of their own client certificates
// (kubernetes.io/kube-apiserver-client-kubelet, rotateCertificates). kube-controller-manager has
// no cluster-signing key here, so it signs none of these; k8sd approves a request only when
// csr-approval.ts accepts it (a registered node asking for its own name, and for a serving
// certificate its own addresses), denies it with a reason otherwise, and signs approved requests
// with the CA as the datastore holds it at that moment: serving certificates with the kubelet CA
// (kubelet-ca.crt: the apiserver verifies kubelets with --kubelet-certificate-authority, and no
// client trusts it for the apiserver, so a kubelet serving certificate can never pass for the
// apiserver's), client certificates with the client CA; during a CA rotation the new ones.
// Every control-plane node runs it; optimistic concurrency on the CSR lets one writer win.
import type { CertificatesV1Api, V1CertificateSigningRequest, V1CertificateSigningRequestCondition } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { CertificateTemplate } from '../../crypto/types.js';
import { backdated, withChain } from '../../pki/signer.js';
import { CaName, KUBELET_SERVING_CA, LEAF_KEY_USAGE } from '../../pki/table.js';
import type { NameContext } from './admission.js';
import { checkKubeletClientCsr, checkKubeletServingCsr, CsrDecision, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, KubeletServingRequest, RegisteredNode } from './csr-approval.js';
import type { MembershipContext } from './context.js';
import { apiStatus, kubeClients } from './kube-clients.js';
import { leafLifetimeMs } from './join-server.js';

const MIN_LIFETIME_S = 600;

/** What k8sd signs for each signer name it serves: the check, the CA and the extended key usage. */
interface SignerProfile {
  check: (csr: KubeletServingRequest, lookup: (name: string) => RegisteredNode | undefined, names?: NameContext) => CsrDecision;
  /** The CA record in the datastore that signs. */
  ca: CaName;
  extKeyUsage: 'serverAuth' | 'clientAuth';
  what: string;
}

const PROFILES: Record<string, SignerProfile> = {
  // The kubelet CA: the apiserver verifies kubelets with it, and no client trusts it for the apiserver.
  [KUBELET_SERVING_SIGNER]: { check: checkKubeletServingCsr, ca: KUBELET_SERVING_CA, extKeyUsage: 'serverAuth', what: 'kubelet serving certificate' },
  // The client CA: the one the apiserver's --client-ca-file names, as for kubelet.conf at join.
  [KUBELET_CLIENT_SIGNER]: { check: checkKubeletClientCsr, ca: 'client-ca', extKeyUsage: 'clientAuth', what: 'kubelet client certificate' },
};

function hasCondition(csr: V1CertificateSigningRequest, type: string): boolean {
  return (csr.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');
}

function condition(type: string, reason: string, message: string): V1CertificateSigningRequestCondition {
  const now = new Date();
  return { type, status: 'True', reason, message, lastUpdateTime: now, lastTransitionTime: now };
}

export class KubeletServingSigner {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private lastError = '';
  /** CSR names already decided or signed by this node (skips re-parsing them every tick). */
  private readonly done = new Set<string>();

  constructor(
    private readonly m: MembershipContext,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async tick(): Promise<number> {
    if (this.busy) return 0;
    this.busy = true;
    try {
      const admin = this.m.d.layout.kubeconfig('admin.conf');
      if (!existsSync(admin) || !this.m.d.state) return 0;
      const records = await this.m.store().members();
      const api = (await kubeClients(admin)).certificates;
      const list = await api.listCertificateSigningRequest();
      const todo = list.items.filter(
        (c) =>
          c.spec.signerName in PROFILES &&
          !c.status?.certificate &&
          !hasCondition(c, 'Denied') &&
          !hasCondition(c, 'Failed') &&
          !this.done.has(`${c.metadata?.name}/${c.metadata?.resourceVersion}`),
      );
      if (!todo.length) return 0;
      const nodes = new Map<string, RegisteredNode>(records.map((r) => [r.name, { name: r.name, addresses: [r.address] }]));
      const config = await this.m.d.state.getConfig();
      const names = { clusterDomain: config?.clusterDomain ?? 'cluster.local', extraSans: config?.extraSans ?? [] };
      let handled = 0;
      for (const csr of todo) if (await this.handle(api, csr, (n) => nodes.get(n), names)) handled++;
      this.lastError = '';
      return handled;
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.m.log.warn('kubelet CSR signer: could not list requests', { error: msg });
      this.lastError = msg;
      return 0;
    } finally {
      this.busy = false;
    }
  }

  private async handle(api: CertificatesV1Api, csr: V1CertificateSigningRequest, lookup: (n: string) => RegisteredNode | undefined, names: NameContext): Promise<boolean> {
    const name = csr.metadata?.name ?? '';
    const log = this.m.log;
    const profile = PROFILES[csr.spec.signerName]!;
    const pem = Buffer.from(csr.spec.request, 'base64').toString('utf8');
    let decision: CsrDecision;
    let parsed: Awaited<ReturnType<typeof this.m.d.crypto.parseCsr>> | undefined;
    try {
      parsed = await this.m.d.crypto.parseCsr(pem);
      decision = profile.check(
        {
          signerName: csr.spec.signerName,
          username: csr.spec.username ?? '',
          groups: csr.spec.groups ?? [],
          usages: csr.spec.usages ?? [],
          subject: parsed.subject,
          dnsNames: parsed.dnsNames,
          ipAddresses: parsed.ipAddresses,
        },
        lookup,
        names,
      );
    } catch (err) {
      decision = { approve: false, reason: 'InvalidRequest', message: `the certificate request cannot be parsed: ${(err as Error).message}` };
    }
    try {
      let current = csr;
      if (!hasCondition(csr, 'Approved')) {
        if (!decision.approve) {
          current.status = { ...(current.status ?? {}), conditions: [...(current.status?.conditions ?? []), condition('Denied', decision.reason, decision.message)] };
          await api.replaceCertificateSigningRequestApproval({ name, body: current });
          log.warn(`denied a ${profile.what} request`, { csr: name, user: csr.spec.username, reason: decision.reason, detail: decision.message });
          this.done.add(`${name}/${csr.metadata?.resourceVersion}`);
          return true;
        }
        current.status = {
          ...(current.status ?? {}),
          conditions: [...(current.status?.conditions ?? []), condition('Approved', 'K8sdAutoApproved', 'k8sd checked the requesting node, the subject and the addresses')],
        };
        current = await api.replaceCertificateSigningRequestApproval({ name, body: current });
        log.info(`approved a ${profile.what} request`, { csr: name, user: csr.spec.username });
      } else if (!decision.approve) {
        current.status = { ...(current.status ?? {}), conditions: [...(current.status?.conditions ?? []), condition('Failed', decision.reason, decision.message)] };
        await api.replaceCertificateSigningRequestStatus({ name, body: current });
        log.warn(`refused to sign an approved ${profile.what} request`, { csr: name, reason: decision.reason, detail: decision.message });
        return true;
      }
      const [pki, config] = await Promise.all([this.m.d.state!.getPki(), this.m.d.state!.getConfig()]);
      const ca = pki?.cas[profile.ca];
      if (!ca?.key || !config || !parsed) throw new Error(`the ${profile.ca} key is not available to k8sd`);
      const maxSeconds = Math.floor(leafLifetimeMs(config) / 1000);
      const seconds = Math.max(MIN_LIFETIME_S, Math.min(csr.spec.expirationSeconds ?? maxSeconds, maxSeconds));
      const now = Date.now();
      const template: CertificateTemplate = {
        subject: parsed.subject,
        dnsNames: parsed.dnsNames,
        ipAddresses: parsed.ipAddresses,
        isCA: false,
        keyUsage: LEAF_KEY_USAGE,
        extKeyUsage: [profile.extKeyUsage],
        notBefore: backdated(new Date(now)),
        notAfter: new Date(now + seconds * 1000),
      };
      // withChain: a rotation phase may give the CA a chain to send after its leaves.
      const cert = withChain(await this.m.d.crypto.signCsr(pem, template, { certificatePem: ca.cert, privateKeyPem: ca.key }), ca);
      current.status = { ...(current.status ?? {}), certificate: Buffer.from(cert).toString('base64') };
      await api.replaceCertificateSigningRequestStatus({ name, body: current });
      if (this.done.size > 10_000) this.done.clear();
      this.done.add(`${name}/${current.metadata?.resourceVersion}`);
      log.info(`signed a ${profile.what}`, { csr: name, user: csr.spec.username, dns: parsed.dnsNames, ips: parsed.ipAddresses, days: Math.round(seconds / 86_400) });
      return true;
    } catch (err) {
      // 409: another control-plane node got there first.
      if (apiStatus(err) === 409) return false;
      log.warn('kubelet CSR signer: could not process a request', { csr: name, error: (err as Error).message });
      return false;
    }
  }
}
