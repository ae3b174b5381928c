// Declarative table of every certificate and kubeconfig k8sd manages.
// One signer (pki/signer.ts) walks this table; nothing else decides names, SANs or lifetimes.
import { ExtendedKeyUsage, KeyUsage } from '../crypto/types.js';

export type CaName = 'ca' | 'client-ca' | 'front-proxy-ca' | 'etcd-ca' | 'kubelet-ca';
export type NodeRole = 'control-plane' | 'worker';

/**
 * The CA that signs kubelet serving certificates (k8sd's kubernetes.io/kubelet-serving signer), and
 * so the one their clients trust: the apiserver's --kubelet-certificate-authority and metrics-server.
 */
export const KUBELET_SERVING_CA: CaName = 'kubelet-ca';

/** What a node knows when its certificates are issued. */
export interface NodeIdentity {
  hostname: string;
  address: string;
  /** Every local interface address, included in the apiserver SANs. */
  localAddresses: string[];
  /** The first service IP of each service CIDR (the `kubernetes` Service). */
  serviceIps: string[];
  extraSans: string[];
  clusterDomain: string;
}

export interface CaSpec {
  name: CaName;
  commonName: string;
  /** Files relative to the PKI dir. */
  certFile: string;
  keyFile: string;
}

export interface LeafSpec {
  name: string;
  issuer: CaName;
  certFile: string;
  keyFile: string;
  commonName: (n: NodeIdentity) => string;
  organization?: string[];
  extKeyUsage: ExtendedKeyUsage[];
  dnsNames: (n: NodeIdentity) => string[];
  ipAddresses: (n: NodeIdentity) => string[];
  /** Services to restart when this certificate changes. */
  services: string[];
  roles: NodeRole[];
}

export interface KubeconfigSpec {
  /** File name under /etc/kubernetes, and the name used by refresh-certs --certificates. */
  name: string;
  issuer: 'client-ca';
  commonName: (n: NodeIdentity) => string;
  organization?: string[];
  services: string[];
  roles: NodeRole[];
  /**
   * The client (client-go) reloads its certificate: the kubeconfig names a certificate and a key
   * file instead of embedding them, and client-go reads those files again on each new connection
   * (and every 5 minutes closes connections made with an older certificate). A new certificate
   * then needs no restart.
   */
  reloads?: true;
}

export const CA_LIFETIME_DAYS = 3650;
export const LEAF_LIFETIME_DAYS = 365;
export const CA_KEY_USAGE: KeyUsage[] = ['digitalSignature', 'keyCertSign', 'crlSign'];
export const LEAF_KEY_USAGE: KeyUsage[] = ['digitalSignature', 'keyEncipherment'];

/** CAs that `rotate-certs-ca` replaces online; the etcd CA is internal to the control plane and is not rotated. */
export const ROTATED_CAS = ['ca', 'client-ca', 'front-proxy-ca', 'kubelet-ca'] as const satisfies readonly CaName[];
export type RotatedCaName = (typeof ROTATED_CAS)[number];

export const CAS: readonly CaSpec[] = [
  { name: 'ca', commonName: 'kubernetes-ca', certFile: 'ca.crt', keyFile: 'ca.key' },
  { name: 'client-ca', commonName: 'kubernetes-ca-client', certFile: 'client-ca.crt', keyFile: 'client-ca.key' },
  { name: 'front-proxy-ca', commonName: 'kubernetes-front-proxy-ca', certFile: 'front-proxy-ca.crt', keyFile: 'front-proxy-ca.key' },
  { name: 'etcd-ca', commonName: 'etcd-ca', certFile: 'etcd/ca.crt', keyFile: 'etcd/ca.key' },
  // Kubelet serving certificates only. kube-apiserver trusts it to reach kubelets
  // (--kubelet-certificate-authority); no client trusts it for the apiserver, so a certificate a
  // node obtains for its kubelet can never pass for the apiserver's.
  { name: 'kubelet-ca', commonName: 'kubernetes-kubelet-ca', certFile: 'kubelet-ca.crt', keyFile: 'kubelet-ca.key' },
];

/** The names of the `kubernetes` Service that kube-apiserver's certificate carries (no node may use them). */
export function apiserverServiceNames(clusterDomain: string): string[] {
  const d = clusterDomain.split('.');
  const suffixes = d.map((_, i) => `kubernetes.default.svc.${d.slice(0, i + 1).join('.')}`);
  return ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', ...suffixes];
}

const none = (): string[] => [];
const loopback = ['127.0.0.1', '::1'];
const uniq = (xs: string[]): string[] => [...new Set(xs)];
const sanIps = (n: NodeIdentity, ...xs: string[]): string[] => uniq([...xs, ...n.extraSans.filter(isIpLike)]);
const sanDns = (n: NodeIdentity, ...xs: string[]): string[] => uniq([...xs, ...n.extraSans.filter((s) => !isIpLike(s))]);
function isIpLike(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}

export const LEAVES: readonly LeafSpec[] = [
  {
    name: 'apiserver',
    issuer: 'ca',
    certFile: 'apiserver.crt',
    keyFile: 'apiserver.key',
    commonName: () => 'kube-apiserver',
    extKeyUsage: ['serverAuth'],
    dnsNames: (n) => sanDns(n, ...apiserverServiceNames(n.clusterDomain), n.hostname),
    ipAddresses: (n) => sanIps(n, ...loopback, n.address, ...n.serviceIps, ...n.localAddresses.filter((a) => !a.startsWith('fe80'))),
    services: ['kube-apiserver'],
    roles: ['control-plane'],
  },
  {
    name: 'kubelet',
    issuer: KUBELET_SERVING_CA,
    certFile: 'kubelet.crt',
    keyFile: 'kubelet.key',
    commonName: (n) => `system:node:${n.hostname}`,
    organization: ['system:nodes'],
    extKeyUsage: ['serverAuth'],
    // The node's own name and address only (what kubelet-serving CSRs may ask for, csr-approval.ts).
    dnsNames: (n) => [n.hostname],
    ipAddresses: (n) => [n.address],
    services: ['kubelet'],
    roles: ['control-plane', 'worker'],
  },
  {
    name: 'apiserver-kubelet-client',
    issuer: 'client-ca',
    certFile: 'apiserver-kubelet-client.crt',
    keyFile: 'apiserver-kubelet-client.key',
    commonName: () => 'apiserver-kubelet-client',
    organization: ['system:masters'],
    extKeyUsage: ['clientAuth'],
    dnsNames: none,
    ipAddresses: none,
    services: ['kube-apiserver'],
    roles: ['control-plane'],
  },
  {
    name: 'front-proxy-client',
    issuer: 'front-proxy-ca',
    certFile: 'front-proxy-client.crt',
    keyFile: 'front-proxy-client.key',
    commonName: () => 'front-proxy-client',
    extKeyUsage: ['clientAuth'],
    dnsNames: none,
    ipAddresses: none,
    services: ['kube-apiserver'],
    roles: ['control-plane'],
  },
  {
    name: 'apiserver-etcd-client',
    issuer: 'etcd-ca',
    certFile: 'apiserver-etcd-client.crt',
    keyFile: 'apiserver-etcd-client.key',
    commonName: () => 'kube-apiserver-etcd-client',
    extKeyUsage: ['clientAuth'],
    dnsNames: none,
    ipAddresses: none,
    services: ['kube-apiserver'],
    roles: ['control-plane'],
  },
  {
    name: 'k8sd-etcd-client',
    issuer: 'etcd-ca',
    certFile: 'etcd/k8sd-client.crt',
    keyFile: 'etcd/k8sd-client.key',
    commonName: () => 'k8sd',
    extKeyUsage: ['clientAuth'],
    dnsNames: none,
    ipAddresses: none,
    services: ['k8sd'],
    roles: ['control-plane'],
  },
  {
    name: 'etcd-server',
    issuer: 'etcd-ca',
    certFile: 'etcd/server.crt',
    keyFile: 'etcd/server.key',
    commonName: () => 'kube-etcd',
    extKeyUsage: ['serverAuth', 'clientAuth'],
    dnsNames: (n) => sanDns(n, n.hostname, 'localhost'),
    ipAddresses: (n) => sanIps(n, ...loopback, n.address),
    services: ['etcd'],
    roles: ['control-plane'],
  },
  {
    name: 'etcd-peer',
    issuer: 'etcd-ca',
    certFile: 'etcd/peer.crt',
    keyFile: 'etcd/peer.key',
    commonName: () => 'kube-etcd-peer',
    extKeyUsage: ['serverAuth', 'clientAuth'],
    dnsNames: (n) => sanDns(n, n.hostname),
    ipAddresses: (n) => sanIps(n, ...loopback, n.address),
    services: ['etcd'],
    roles: ['control-plane'],
  },
];

/** The user flanneld authenticates as (a ClusterRole of the network feature is bound to it). */
export const FLANNEL_USER = 'k8sd:network';

export const KUBECONFIGS: readonly KubeconfigSpec[] = [
  { name: 'admin.conf', issuer: 'client-ca', commonName: () => 'kubernetes-admin', organization: ['system:masters'], services: [], roles: ['control-plane'] },
  { name: 'controller.conf', issuer: 'client-ca', commonName: () => 'system:kube-controller-manager', services: ['kube-controller-manager'], roles: ['control-plane'], reloads: true },
  { name: 'scheduler.conf', issuer: 'client-ca', commonName: () => 'system:kube-scheduler', services: ['kube-scheduler'], roles: ['control-plane'], reloads: true },
  { name: 'proxy.conf', issuer: 'client-ca', commonName: () => 'system:kube-proxy', services: ['kube-proxy'], roles: ['control-plane', 'worker'], reloads: true },
  { name: 'kubelet.conf', issuer: 'client-ca', commonName: (n) => `system:node:${n.hostname}`, organization: ['system:nodes'], services: ['kubelet'], roles: ['control-plane', 'worker'] },
  // flanneld (the network feature): reads nodes and annotates its own; RBAC comes with the feature.
  { name: 'flannel.conf', issuer: 'client-ca', commonName: () => FLANNEL_USER, services: ['flanneld'], roles: ['control-plane', 'worker'], reloads: true },
];

/** The service-account signing key (and its public half for verification). */
export const SERVICE_ACCOUNT_KEY = 'serviceaccount.key';
export const SERVICE_ACCOUNT_PUB = 'serviceaccount.pub';

/** Names accepted by `refresh-certs --certificates`, per role. */
export function refreshableNames(role: NodeRole): string[] {
  return [
    ...LEAVES.filter((l) => l.roles.includes(role)).map((l) => l.name),
    ...KUBECONFIGS.filter((k) => k.roles.includes(role)).map((k) => k.name),
  ];
}
