// Signs kubelet serving certificates (signerName kubernetes.io/kubelet-serving) on control-plane
// nodes. kube-controller-manager has no cluster-signing key here, so it signs none of these;
// k8sd approves a request only when csr-approval.ts accepts it (a registered node asking for
// its own name and addresses), denies it with a reason otherwise, and signs approved requests
// with the kubelet CA as the datastore holds it at that moment (kubelet-ca.crt: the apiserver
// verifies kubelets with --kubelet-certificate-authority, and no client trusts it for the
// apiserver, so a kubelet serving certificate can never pass for the apiserver's); during a CA
// rotation that is the new kubelet CA.
// Every control-plane node runs it; optimistic concurrency on the CSR lets one writer win.
import type { CertificatesV1Api, V1CertificateSigningRequest, V1CertificateSigningRequestCondition } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { CertificateTemplate } from '../../crypto/types.js';
import { withChain } from '../../pki/signer.js';
import { KUBELET_SERVING_CA, LEAF_KEY_USAGE } from '../../pki/table.js';
import type { NameContext } from './admission.js';
import { checkKubeletServingCsr, CsrDecision, KUBELET_SERVING_SIGNER, RegisteredNode } from './csr-approval.js';
import type { Membership } from './index.js';
import { apiStatus, kubeClients } from './kube-clients.js';
import { leafLifetimeMs } from './join-server.js';

const MIN_LIFETIME_S = 600;

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
    private readonly m: Membership,
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
          c.spec.signerName === KUBELET_SERVING_SIGNER &&
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
      if (msg !== this.lastError) this.m.log.warn('kubelet serving CSR signer: could not list requests', { error: msg });
      this.lastError = msg;
      return 0;
    } finally {
      this.busy = false;
    }
  }

  private async handle(api: CertificatesV1Api, csr: V1CertificateSigningRequest, lookup: (n: string) => RegisteredNode | undefined, names: NameContext): Promise<boolean> {
    const name = csr.metadata?.name ?? '';
    const log = this.m.log;
    const pem = Buffer.from(csr.spec.request, 'base64').toString('utf8');
    let decision: CsrDecision;
    let parsed: Awaited<ReturnType<typeof this.m.d.crypto.parseCsr>> | undefined;
    try {
      parsed = await this.m.d.crypto.parseCsr(pem);
      decision = checkKubeletServingCsr(
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
          log.warn('denied a kubelet serving certificate request', { csr: name, user: csr.spec.username, reason: decision.reason, detail: decision.message });
          this.done.add(`${name}/${csr.metadata?.resourceVersion}`);
          return true;
        }
        current.status = {
          ...(current.status ?? {}),
          conditions: [...(current.status?.conditions ?? []), condition('Approved', 'K8sdAutoApproved', 'k8sd checked the requesting node, the subject and the addresses')],
        };
        current = await api.replaceCertificateSigningRequestApproval({ name, body: current });
        log.info('approved a kubelet serving certificate request', { csr: name, user: csr.spec.username });
      } else if (!decision.approve) {
        current.status = { ...(current.status ?? {}), conditions: [...(current.status?.conditions ?? []), condition('Failed', decision.reason, decision.message)] };
        await api.replaceCertificateSigningRequestStatus({ name, body: current });
        log.warn('refused to sign an approved kubelet serving request', { csr: name, reason: decision.reason, detail: decision.message });
        return true;
      }
      const [pki, config] = await Promise.all([this.m.d.state!.getPki(), this.m.d.state!.getConfig()]);
      const ca = pki?.cas[KUBELET_SERVING_CA];
      if (!ca?.key || !config || !parsed) throw new Error('the kubelet CA key is not available to k8sd');
      const maxSeconds = Math.floor(leafLifetimeMs(config) / 1000);
      const seconds = Math.max(MIN_LIFETIME_S, Math.min(csr.spec.expirationSeconds ?? maxSeconds, maxSeconds));
      const now = Date.now();
      const template: CertificateTemplate = {
        subject: parsed.subject,
        dnsNames: parsed.dnsNames,
        ipAddresses: parsed.ipAddresses,
        isCA: false,
        keyUsage: LEAF_KEY_USAGE,
        extKeyUsage: ['serverAuth'],
        notBefore: new Date(now - 5 * 60_000),
        notAfter: new Date(now + seconds * 1000),
      };
      // withChain: a rotation phase may give the CA a chain to send after its leaves.
      const cert = withChain(await this.m.d.crypto.signCsr(pem, template, { certificatePem: ca.cert, privateKeyPem: ca.key }), ca);
      current.status = { ...(current.status ?? {}), certificate: Buffer.from(cert).toString('base64') };
      await api.replaceCertificateSigningRequestStatus({ name, body: current });
      if (this.done.size > 10_000) this.done.clear();
      this.done.add(`${name}/${current.metadata?.resourceVersion}`);
      log.info('signed a kubelet serving certificate', { csr: name, user: csr.spec.username, dns: parsed.dnsNames, ips: parsed.ipAddresses, days: Math.round(seconds / 86_400) });
      return true;
    } catch (err) {
      // 409: another control-plane node got there first.
      if (apiStatus(err) === 409) return false;
      log.warn('kubelet serving CSR signer: could not process a request', { csr: name, error: (err as Error).message });
      return false;
    }
  }
}
