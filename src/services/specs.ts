// One spec per component: its binary and its argument builder with secure defaults.
// CIS Kubernetes Benchmark ids (v1.12, kube-bench profile cis-1.12) are cited next to the flags they satisfy.
import { Layout } from '../layout.js';
import { isLoopback } from '../config/net.js';
import { Args } from './args.js';
import { goTlsSettings } from '../crypto/tls.js';
import { KUBELET_SERVING_CA } from '../pki/table.js';

export const CONTROL_PLANE_SERVICES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;
export const WORKER_SERVICES = ['containerd', 'kubelet', 'kube-proxy', 'k8s-apiserver-proxy', 'flanneld'] as const;
export type ServiceId = (typeof CONTROL_PLANE_SERVICES)[number] | (typeof WORKER_SERVICES)[number];

/** Go cipher-suite names: ECDHE with AES-GCM only (TLS 1.3 suites are not configurable in Go and are all AEAD). */
export const GO_TLS_CIPHER_SUITES: string[] = goTlsSettings().cipherSuites.split(',');

export interface ServiceBinary {
  component: string;
  binary: string;
}

export const BINARIES: Record<ServiceId, ServiceBinary> = {
  etcd: { component: 'etcd', binary: 'etcd' },
  'kube-apiserver': { component: 'kubernetes', binary: 'kube-apiserver' },
  'kube-controller-manager': { component: 'kubernetes', binary: 'kube-controller-manager' },
  'kube-scheduler': { component: 'kubernetes', binary: 'kube-scheduler' },
  kubelet: { component: 'kubernetes', binary: 'kubelet' },
  'kube-proxy': { component: 'kubernetes', binary: 'kube-proxy' },
  containerd: { component: 'containerd', binary: 'containerd' },
  'k8s-apiserver-proxy': { component: 'k8s', binary: 'k8s-apiserver-proxy' },
  flanneld: { component: 'flannel', binary: 'flanneld' },
};

/** Everything the argument builders need to know about the node and the cluster. */
export interface ServiceContext {
  layout: Layout;
  nodeName: string;
  nodeAddress: string;
  securePort: number;
  etcdPort: number;
  etcdPeerPort: number;
  serviceCidr: string;
  podCidr: string;
  /** etcd endpoints the apiserver and k8sd use. */
  etcdServers: string[];
  /** For a new etcd member: name=peerURL list and state. */
  etcdInitialCluster: string;
  etcdInitialClusterState: 'new' | 'existing';
  /** Extra apiserver flags from the security module (audit, admission, encryption). */
  apiserverSecurityArgs: Args;
}

/** Address the local components use to reach this node's own listeners. */
export function localAddress(ctx: Pick<ServiceContext, 'nodeAddress'>): string {
  return isLoopback(ctx.nodeAddress) ? ctx.nodeAddress : '127.0.0.1';
}

/** address:port, with IPv6 addresses in brackets. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function apiServerUrl(ctx: Pick<ServiceContext, 'nodeAddress' | 'securePort'>): string {
  return `https://${hostPort(localAddress(ctx), ctx.securePort)}`;
}

const tls = (): Args => ({
  'tls-min-version': 'VersionTLS12',
  'tls-cipher-suites': GO_TLS_CIPHER_SUITES.join(','), // CIS 1.2.29 (kube-apiserver: strong ciphers only)
});

export function etcdArgs(ctx: ServiceContext): Args {
  const l = ctx.layout;
  const clientListen = [...new Set([`https://${hostPort(localAddress(ctx), ctx.etcdPort)}`, `https://${hostPort(ctx.nodeAddress, ctx.etcdPort)}`])];
  return {
    name: ctx.nodeName,
    'data-dir': l.etcdDataDir,
    'listen-client-urls': clientListen.join(','),
    'advertise-client-urls': `https://${hostPort(ctx.nodeAddress, ctx.etcdPort)}`,
    'listen-peer-urls': `https://${hostPort(ctx.nodeAddress, ctx.etcdPeerPort)}`,
    'initial-advertise-peer-urls': `https://${hostPort(ctx.nodeAddress, ctx.etcdPeerPort)}`,
    'initial-cluster': ctx.etcdInitialCluster,
    'initial-cluster-state': ctx.etcdInitialClusterState,
    'listen-metrics-urls': `http://${hostPort(localAddress(ctx), ctx.etcdPort + 2)}`,
    'cert-file': l.pki('etcd/server.crt'), // CIS 2.1
    'key-file': l.pki('etcd/server.key'),
    'client-cert-auth': 'true', // CIS 2.2
    'auto-tls': 'false', // CIS 2.3
    'trusted-ca-file': l.pki('etcd/ca.crt'), // CIS 2.7 (a CA of its own)
    'peer-cert-file': l.pki('etcd/peer.crt'), // CIS 2.4
    'peer-key-file': l.pki('etcd/peer.key'),
    'peer-client-cert-auth': 'true', // CIS 2.5
    'peer-auto-tls': 'false', // CIS 2.6
    'peer-trusted-ca-file': l.pki('etcd/ca.crt'),
    'tls-min-version': 'TLS1.2',
    'cipher-suites': GO_TLS_CIPHER_SUITES.join(','),
    'log-level': 'warn',
  };
}

export function kubeApiserverArgs(ctx: ServiceContext): Args {
  const l = ctx.layout;
  const args: Args = {
    'advertise-address': ctx.nodeAddress,
    'secure-port': String(ctx.securePort),
    'allow-privileged': 'true',
    'anonymous-auth': 'false', // CIS 1.2.1
    'authorization-mode': 'Node,RBAC', // CIS 1.2.6-1.2.8
    'enable-admission-plugins': 'NodeRestriction', // CIS 1.2.14
    profiling: 'false', // CIS 1.2.15
    'client-ca-file': l.pki('client-ca.crt'), // CIS 1.2.25
    'tls-cert-file': l.pki('apiserver.crt'), // CIS 1.2.24
    'tls-private-key-file': l.pki('apiserver.key'),
    ...tls(),
    'etcd-servers': ctx.etcdServers.join(','),
    'etcd-cafile': l.pki('etcd/ca.crt'), // CIS 1.2.26
    'etcd-certfile': l.pki('apiserver-etcd-client.crt'), // CIS 1.2.23
    'etcd-keyfile': l.pki('apiserver-etcd-client.key'),
    // CIS 1.2.5: kubelets serve certificates of their own CA, which no client trusts for the apiserver.
    'kubelet-certificate-authority': l.pki(`${KUBELET_SERVING_CA}.crt`),
    'kubelet-client-certificate': l.pki('apiserver-kubelet-client.crt'), // CIS 1.2.4
    'kubelet-client-key': l.pki('apiserver-kubelet-client.key'),
    'kubelet-preferred-address-types': 'InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP',
    'service-account-issuer': 'https://kubernetes.default.svc',
    'service-account-key-file': l.pki('serviceaccount.pub'), // CIS 1.2.22
    'service-account-signing-key-file': l.pki('serviceaccount.key'),
    'service-account-lookup': 'true', // CIS 1.2.21
    // Projected tokens live as long as requested (kubelet asks for 1 h and rotates), not 1 year.
    'service-account-extend-token-expiration': 'false', // CIS 1.2.30
    'service-cluster-ip-range': ctx.serviceCidr,
    'requestheader-client-ca-file': l.pki('front-proxy-ca.crt'),
    'requestheader-allowed-names': 'front-proxy-client',
    'requestheader-extra-headers-prefix': 'X-Remote-Extra-',
    'requestheader-group-headers': 'X-Remote-Group',
    'requestheader-username-headers': 'X-Remote-User',
    'proxy-client-cert-file': l.pki('front-proxy-client.crt'),
    'proxy-client-key-file': l.pki('front-proxy-client.key'),
    'request-timeout': '300s', // CIS 1.2.20 (manual)
    'strict-transport-security-directives': 'max-age=31536000,includeSubDomains',
    ...ctx.apiserverSecurityArgs,
  };
  if (isLoopback(ctx.nodeAddress)) args['bind-address'] = ctx.nodeAddress;
  return args;
}

function componentKubeconfigArgs(kubeconfig: string): Args {
  return { kubeconfig, 'authentication-kubeconfig': kubeconfig, 'authorization-kubeconfig': kubeconfig };
}

export function kubeControllerManagerArgs(ctx: ServiceContext): Args {
  const l = ctx.layout;
  return {
    ...componentKubeconfigArgs(l.kubeconfig('controller.conf')),
    'bind-address': localAddress(ctx), // CIS 1.3.7
    'leader-elect': 'true',
    'leader-elect-lease-duration': '30s',
    'leader-elect-renew-deadline': '15s',
    profiling: 'false', // CIS 1.3.2
    'use-service-account-credentials': 'true', // CIS 1.3.3
    // With per-controller credentials, start-up makes three requests per controller (get the
    // ServiceAccount, get the namespace, create the ServiceAccount) through the one root client, about
    // 130 on a fresh cluster. At the default 20 requests/s after a burst of 30, that client throttled
    // itself for about 5 s before any controller ran, and every Deployment waited (issue 17,
    // tests/bench/timeline.sh). Each controller's own client gets the same limits.
    'kube-api-qps': '100',
    'kube-api-burst': '200',
    'service-account-private-key-file': l.pki('serviceaccount.key'), // CIS 1.3.4
    'root-ca-file': l.pki('ca.crt'), // CIS 1.3.5
    'terminated-pod-gc-threshold': '12500', // CIS 1.3.1
    'cluster-cidr': ctx.podCidr,
    'service-cluster-ip-range': ctx.serviceCidr,
    'allocate-node-cidrs': 'true',
    'requestheader-client-ca-file': l.pki('front-proxy-ca.crt'),
    'client-ca-file': l.pki('client-ca.crt'),
    ...tls(),
  };
}

export function kubeSchedulerArgs(ctx: ServiceContext): Args {
  const l = ctx.layout;
  return {
    ...componentKubeconfigArgs(l.kubeconfig('scheduler.conf')),
    'bind-address': localAddress(ctx), // CIS 1.4.2
    'leader-elect': 'true',
    'leader-elect-lease-duration': '30s',
    'leader-elect-renew-deadline': '15s',
    profiling: 'false', // CIS 1.4.1
    'requestheader-client-ca-file': l.pki('front-proxy-ca.crt'),
    'client-ca-file': l.pki('client-ca.crt'),
    ...tls(),
  };
}

export const ARG_BUILDERS: Partial<Record<ServiceId, (ctx: ServiceContext) => Args>> = {
  etcd: etcdArgs,
  'kube-apiserver': kubeApiserverArgs,
  'kube-controller-manager': kubeControllerManagerArgs,
  'kube-scheduler': kubeSchedulerArgs,
};
