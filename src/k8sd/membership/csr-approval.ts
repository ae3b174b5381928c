// Which kubelet certificate requests (serving, and client renewals) k8sd approves. Pure: the signer controller feeds it
// the CSR (as the API server recorded it and as parsed from its PEM) and the registered nodes.
import { canonicalIp, ipKind } from '../../config/net.js';
import { DistinguishedName } from '../../crypto/types.js';
import { NameContext, reservedNameReason } from './admission.js';

export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
const ALLOWED_USAGES = new Set(['digital signature', 'key encipherment', 'server auth']);
/** What a kubelet with rotateCertificates files to renew the client certificate it talks to the API server with. */
export const KUBELET_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
const CLIENT_USAGES = new Set(['digital signature', 'key encipherment', 'client auth']);

export interface KubeletServingRequest {
  signerName: string;
  /** Who created the CSR, as authenticated by the API server. */
  username: string;
  groups: string[];
  usages: string[];
  /** Parsed from spec.request (its self-signature already verified). */
  subject: DistinguishedName;
  dnsNames: string[];
  ipAddresses: string[];
}

/** A node k8sd registered (joined through a token), with the addresses it may claim. */
export interface RegisteredNode {
  name: string;
  addresses: string[];
}

export type CsrDecision = { approve: true } | { approve: false; reason: string; message: string };

const deny = (reason: string, message: string): CsrDecision => ({ approve: false, reason, message });

/**
 * The requester is a node registered with k8sd, asking in its own name (CN system:node:<name>,
 * O system:nodes): the part both kubelet signers check alike. Returns the node, or the denial.
 * `names`: the cluster's reserved names (admission.ts); a node registered under one before they
 * were refused at join gets no certificate for it.
 */
function checkNodeIdentity(csr: KubeletServingRequest, signer: string, lookup: (name: string) => RegisteredNode | undefined, names?: NameContext): RegisteredNode | CsrDecision {
  if (csr.signerName !== signer) return deny('WrongSigner', `this check is for ${signer}, not ${csr.signerName}`);
  const m = /^system:node:(.+)$/.exec(csr.username);
  if (!m || !csr.groups.includes('system:nodes')) {
    return deny('NotANode', `requested by "${csr.username}", not by a node (system:node:<name> in group system:nodes)`);
  }
  const nodeName = m[1]!;
  const node = lookup(nodeName);
  if (!node) return deny('UnknownNode', `node "${nodeName}" is not registered with k8sd (it did not join with a token)`);
  const reserved = names && reservedNameReason(node.name, names);
  if (reserved) return deny('ReservedName', `node "${node.name}" has a reserved name (${reserved}); remove it and join it again under its own name`);
  if (csr.subject.commonName !== `system:node:${nodeName}`) {
    return deny('SubjectMismatch', `the subject CN "${csr.subject.commonName}" must be "system:node:${nodeName}", the requesting node`);
  }
  const orgs = csr.subject.organization ?? [];
  if (orgs.length !== 1 || orgs[0] !== 'system:nodes') {
    return deny('SubjectMismatch', `the subject organization must be exactly "system:nodes", not "${orgs.join(',')}"`);
  }
  return node;
}

const isDecision = (x: RegisteredNode | CsrDecision): x is CsrDecision => 'approve' in x;

export function checkKubeletServingCsr(csr: KubeletServingRequest, lookup: (name: string) => RegisteredNode | undefined, names?: NameContext): CsrDecision {
  const node = checkNodeIdentity(csr, KUBELET_SERVING_SIGNER, lookup, names);
  if (isDecision(node)) return node;
  const badUsages = csr.usages.filter((u) => !ALLOWED_USAGES.has(u));
  if (badUsages.length || !csr.usages.includes('server auth')) {
    return deny('BadUsages', `usages must include "server auth" and be among ${[...ALLOWED_USAGES].join(', ')}; got ${csr.usages.join(', ')}`);
  }
  if (csr.dnsNames.length === 0 && csr.ipAddresses.length === 0) return deny('NoSubjectAltNames', 'the request names no DNS name or IP address');
  const badDns = csr.dnsNames.filter((d) => d.toLowerCase() !== node.name.toLowerCase());
  if (badDns.length) return deny('ForeignSubjectAltName', `DNS names ${badDns.join(', ')} do not belong to node "${node.name}" (only "${node.name}" is allowed)`);
  // Compared in canonical form; an IPv4-mapped, unspecified or other special address is refused even
  // when a node was registered with it (joins refuse them; a loopback address is only ever the
  // registered address of a node bootstrapped on loopback, whose kubelet then serves there).
  const allowedIps = new Set(node.addresses.map((a) => canonicalIp(a)).filter((a): a is string => a !== undefined && ['unicast', 'loopback'].includes(ipKind(a))));
  const badIps = csr.ipAddresses.filter((ip) => {
    const c = canonicalIp(ip);
    return c === undefined || !allowedIps.has(c);
  });
  if (badIps.length) {
    return deny('ForeignSubjectAltName', `IP addresses ${badIps.join(', ')} are not addresses of node "${node.name}" (allowed: ${node.addresses.join(', ')})`);
  }
  return { approve: true };
}

/**
 * A kubelet renewing its own client certificate (rotateCertificates): a registered node, for
 * itself, with client usages and no subject alternative names. A request by anyone else (a
 * bootstrap token, another node, an admin) is denied: k8sd's joins issue a node's first certificate.
 */
export function checkKubeletClientCsr(csr: KubeletServingRequest, lookup: (name: string) => RegisteredNode | undefined, names?: NameContext): CsrDecision {
  const node = checkNodeIdentity(csr, KUBELET_CLIENT_SIGNER, lookup, names);
  if (isDecision(node)) return node;
  const badUsages = csr.usages.filter((u) => !CLIENT_USAGES.has(u));
  if (badUsages.length || !csr.usages.includes('client auth')) {
    return deny('BadUsages', `usages must include "client auth" and be among ${[...CLIENT_USAGES].join(', ')}; got ${csr.usages.join(', ')}`);
  }
  if (csr.dnsNames.length || csr.ipAddresses.length) {
    return deny('UnexpectedSubjectAltName', `a kubelet client certificate names no DNS name or IP address; got ${[...csr.dnsNames, ...csr.ipAddresses].join(', ')}`);
  }
  return { approve: true };
}
