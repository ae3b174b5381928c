import { describe, expect, it } from 'vitest';
import { checkKubeletClientCsr, checkKubeletServingCsr, KUBELET_CLIENT_SIGNER, KubeletServingRequest, RegisteredNode } from '../../src/k8sd/membership/csr-approval.js';

const nodes: Record<string, RegisteredNode> = { w1: { name: 'w1', addresses: ['10.0.0.21'] } };
const lookup = (n: string): RegisteredNode | undefined => nodes[n];

function csr(overrides: Partial<KubeletServingRequest> = {}): KubeletServingRequest {
  return {
    signerName: 'kubernetes.io/kubelet-serving',
    username: 'system:node:w1',
    groups: ['system:nodes', 'system:authenticated'],
    usages: ['digital signature', 'server auth'],
    subject: { commonName: 'system:node:w1', organization: ['system:nodes'] },
    dnsNames: ['w1'],
    ipAddresses: ['10.0.0.21'],
    ...overrides,
  };
}

const denied = (c: KubeletServingRequest): string => {
  const d = checkKubeletServingCsr(c, lookup);
  if (d.approve) throw new Error('approved');
  return d.reason;
};

describe('kubelet serving CSR approval', () => {
  it('approves a registered node asking for its own name and address', () => {
    expect(checkKubeletServingCsr(csr(), lookup)).toEqual({ approve: true });
    expect(checkKubeletServingCsr(csr({ usages: ['digital signature', 'key encipherment', 'server auth'] }), lookup).approve).toBe(true);
  });

  it('denies another signer', () => expect(denied(csr({ signerName: 'kubernetes.io/kube-apiserver-client' }))).toBe('WrongSigner'));
  it('denies a request not made by a node', () => expect(denied(csr({ username: 'alice', groups: ['system:authenticated'] }))).toBe('NotANode'));
  it('denies a node user outside system:nodes', () => expect(denied(csr({ groups: ['system:authenticated'] }))).toBe('NotANode'));
  it('denies a node k8sd never registered', () =>
    expect(denied(csr({ username: 'system:node:ghost', subject: { commonName: 'system:node:ghost', organization: ['system:nodes'] }, dnsNames: ['ghost'] }))).toBe('UnknownNode'));
  it('denies a node asking for another node’s name in CN', () =>
    expect(denied(csr({ subject: { commonName: 'system:node:cp1', organization: ['system:nodes'] } }))).toBe('SubjectMismatch'));
  it('denies a wrong organization', () => expect(denied(csr({ subject: { commonName: 'system:node:w1', organization: ['system:masters'] } }))).toBe('SubjectMismatch'));
  it('denies client usages', () => expect(denied(csr({ usages: ['digital signature', 'client auth'] }))).toBe('BadUsages'));
  it('denies a foreign DNS name', () => {
    const d = checkKubeletServingCsr(csr({ dnsNames: ['w1', 'kubernetes.default'] }), lookup);
    expect(d).toMatchObject({ approve: false, reason: 'ForeignSubjectAltName' });
    expect(d.approve ? '' : d.message).toMatch(/kubernetes.default/);
  });
  it('denies an IP address the node does not have', () => expect(denied(csr({ ipAddresses: ['10.0.0.21', '10.0.0.1'] }))).toBe('ForeignSubjectAltName'));
  it('denies a request with no names at all', () => expect(denied(csr({ dnsNames: [], ipAddresses: [] }))).toBe('NoSubjectAltNames'));
});

describe('kubelet serving CSR approval: addresses and names a node may never be certified for', () => {
  const mapped: Record<string, RegisteredNode> = {
    // Registered before joins refused such addresses: the approval refuses them on its own.
    evil: { name: 'evil', addresses: ['::ffff:127.0.0.1'] },
    kubernetes: { name: 'kubernetes', addresses: ['10.0.0.40'] },
    v6: { name: 'v6', addresses: ['2001:db8::7'] },
  };
  const as = (name: string, over: Partial<KubeletServingRequest>): KubeletServingRequest =>
    csr({ username: `system:node:${name}`, subject: { commonName: `system:node:${name}`, organization: ['system:nodes'] }, dnsNames: [name], ...over });
  const decide = (c: KubeletServingRequest) => checkKubeletServingCsr(c, (n) => mapped[n], { clusterDomain: 'cluster.local', extraSans: [] });

  it('does not let an IPv4-mapped registration stand for the IPv4 loopback address', () => {
    for (const ip of ['127.0.0.1', '::ffff:127.0.0.1']) {
      const d = decide(as('evil', { ipAddresses: [ip] }));
      expect(d.approve, ip).toBe(false);
    }
  });

  it('refuses a node registered under a reserved name', () => {
    const d = decide(as('kubernetes', { ipAddresses: ['10.0.0.40'] }));
    expect(d).toMatchObject({ approve: false, reason: 'ReservedName' });
  });

  it('compares IPv6 addresses in canonical form', () => {
    expect(decide(as('v6', { ipAddresses: ['2001:DB8:0:0::7'] })).approve).toBe(true);
    expect(decide(as('v6', { ipAddresses: ['2001:db8::8'] })).approve).toBe(false);
  });
});

describe('kubelet client CSR approval (rotateCertificates)', () => {
  const client = (overrides: Partial<KubeletServingRequest> = {}): KubeletServingRequest =>
    csr({ signerName: KUBELET_CLIENT_SIGNER, usages: ['digital signature', 'client auth'], dnsNames: [], ipAddresses: [], ...overrides });
  const clientDenied = (c: KubeletServingRequest): string => {
    const d = checkKubeletClientCsr(c, lookup);
    if (d.approve) throw new Error('approved');
    return d.reason;
  };

  it('approves a registered node renewing its own client certificate', () => {
    expect(checkKubeletClientCsr(client(), lookup)).toEqual({ approve: true });
    expect(checkKubeletClientCsr(client({ usages: ['digital signature', 'key encipherment', 'client auth'] }), lookup).approve).toBe(true);
  });
  it('denies the serving signer', () => expect(clientDenied(client({ signerName: 'kubernetes.io/kubelet-serving' }))).toBe('WrongSigner'));
  it('denies a bootstrap token or an admin asking for a node certificate', () => {
    expect(clientDenied(client({ username: 'system:bootstrap:abcdef', groups: ['system:bootstrappers'] }))).toBe('NotANode');
    expect(clientDenied(client({ username: 'kubernetes-admin', groups: ['system:masters'] }))).toBe('NotANode');
  });
  it('denies a node asking for another node’s identity', () =>
    expect(clientDenied(client({ subject: { commonName: 'system:node:cp1', organization: ['system:nodes'] } }))).toBe('SubjectMismatch'));
  it('denies a node asking for system:masters', () =>
    expect(clientDenied(client({ subject: { commonName: 'system:node:w1', organization: ['system:nodes', 'system:masters'] } }))).toBe('SubjectMismatch'));
  it('denies a node k8sd never registered', () =>
    expect(clientDenied(client({ username: 'system:node:ghost', subject: { commonName: 'system:node:ghost', organization: ['system:nodes'] } }))).toBe('UnknownNode'));
  it('denies server usages', () => expect(clientDenied(client({ usages: ['digital signature', 'server auth', 'client auth'] }))).toBe('BadUsages'));
  it('denies subject alternative names', () => expect(clientDenied(client({ dnsNames: ['w1'] }))).toBe('UnexpectedSubjectAltName'));
});
