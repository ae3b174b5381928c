// Walks the PKI table: creates CAs, issues leaves and kubeconfig client certificates,
// validates user-supplied material, and renders everything into files.
import { existsSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { CertificateTemplate, CryptoBackend, Issuer, KeyAlgorithm } from '../crypto/types.js';
import { FileSpec } from '../host/files.js';
import { Layout } from '../layout.js';
import {
  CA_KEY_USAGE,
  CA_LIFETIME_DAYS,
  CaName,
  CAS,
  KUBECONFIGS,
  KubeconfigSpec,
  LEAF_KEY_USAGE,
  LEAF_LIFETIME_DAYS,
  LEAVES,
  LeafSpec,
  NodeIdentity,
  NodeRole,
  SERVICE_ACCOUNT_KEY,
  SERVICE_ACCOUNT_PUB,
} from './table.js';

const DAY_MS = 24 * 3600 * 1000;

export class PkiError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'PkiError';
  }
}

export interface CaMaterial {
  cert: string;
  /** Absent when the CA is external: then every leaf it signs must be supplied. */
  key?: string;
  /** Certificates trusted alongside this CA during rotation (old or cross-signed CAs). */
  extraTrust?: string[];
  /**
   * Intermediates sent after every serving leaf this CA issues. During a CA rotation: the new CA
   * cross-signed by the old one, so that clients that trust only the old CA accept the new leaves.
   */
  chain?: string[];
}
export interface IssuedCert {
  cert: string;
  key: string;
  external: boolean;
}
export interface PkiBundle {
  cas: Record<CaName, CaMaterial>;
  leaves: Record<string, IssuedCert>;
  kubeconfigs: Record<string, IssuedCert>;
  serviceAccountKey: string;
  /** SPKI PEM of the service-account key (the apiserver verifies tokens with it). */
  serviceAccountPub: string;
}

export interface IssueOptions {
  keyType: KeyAlgorithm;
  /** Leaf lifetime; CAs always get CA_LIFETIME_DAYS. */
  leafLifetimeMs?: number;
  now?: Date;
}

const BACKDATE_MS = 5 * 60_000;

/**
 * notBefore of a certificate issued at now: back-dated by 5 minutes to absorb clock skew between
 * nodes. Test hook: K8S_TEST_CERT_BACKDATE_SECONDS=<n> back-dates by n seconds instead, so that a
 * test's minutes-long certificates come due sooner (a renewal is due at a fraction of
 * notAfter - notBefore, and a kubelet renews at 70-90% of it).
 */
export function backdated(now: Date): Date {
  const raw = process.env.K8S_TEST_CERT_BACKDATE_SECONDS;
  const seconds = raw ? Number(raw) : NaN;
  return new Date(now.getTime() - (Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : BACKDATE_MS));
}

function window(now: Date, lifetimeMs: number): { notBefore: Date; notAfter: Date } {
  return { notBefore: backdated(now), notAfter: new Date(now.getTime() + lifetimeMs) };
}

export function caTemplate(commonName: string, now = new Date()): CertificateTemplate {
  return { subject: { commonName }, isCA: true, keyUsage: CA_KEY_USAGE, ...window(now, CA_LIFETIME_DAYS * DAY_MS) };
}

export function leafTemplate(spec: LeafSpec | KubeconfigSpec, node: NodeIdentity, lifetimeMs: number, now = new Date()): CertificateTemplate {
  const leaf = 'certFile' in spec ? spec : undefined;
  const organization = spec.organization;
  return {
    subject: organization ? { commonName: spec.commonName(node), organization } : { commonName: spec.commonName(node) },
    dnsNames: leaf ? leaf.dnsNames(node) : [],
    ipAddresses: leaf ? leaf.ipAddresses(node) : [],
    isCA: false,
    keyUsage: LEAF_KEY_USAGE,
    extKeyUsage: leaf ? leaf.extKeyUsage : ['clientAuth'],
    ...window(now, lifetimeMs),
  };
}

export async function generateCa(backend: CryptoBackend, commonName: string, keyType: KeyAlgorithm, now = new Date()): Promise<CaMaterial> {
  const key = await backend.generateKeyPair(keyType);
  return { cert: await backend.createCertificate(caTemplate(commonName, now), key), key: key.privateKeyPem };
}

/** Creates every CA not supplied; validates the supplied ones (cert is a CA, key matches, not expired). */
export async function ensureCas(
  backend: CryptoBackend,
  keyType: KeyAlgorithm,
  supplied: Partial<Record<CaName, { crt?: string; key?: string }>>,
  now = new Date(),
): Promise<Record<CaName, CaMaterial>> {
  const out = {} as Record<CaName, CaMaterial>;
  // Independent CAs are made concurrently (the OpenSSL backend spends most of its time in process start-up).
  await Promise.all(CAS.map(async (ca) => {
    const given = supplied[ca.name];
    if (given?.crt) {
      const field = `${ca.name}-crt`;
      let info;
      try {
        info = backend.parseCertificate(given.crt);
      } catch (err) {
        throw new PkiError(field, (err as Error).message);
      }
      if (!info.isCA) throw new PkiError(field, 'is not a CA certificate (basicConstraints CA:TRUE is missing)');
      if (info.notAfter <= now) throw new PkiError(field, `expired on ${info.notAfter.toISOString()}`);
      if (given.key && !(await backend.keyMatchesCertificate(given.key, given.crt))) {
        throw new PkiError(`${ca.name}-key`, `does not match ${field}; supply the private key of that certificate`);
      }
      out[ca.name] = given.key ? { cert: given.crt, key: given.key } : { cert: given.crt };
    } else {
      out[ca.name] = await generateCa(backend, ca.commonName, keyType, now);
    }
  }));
  return out;
}

/** Name of the bootstrap-config key prefix for a leaf or kubeconfig, e.g. admin.conf -> admin-client. */
export function suppliedKeyFor(name: string): string {
  const map: Record<string, string> = {
    'admin.conf': 'admin-client',
    'controller.conf': 'kube-controller-manager-client',
    'scheduler.conf': 'kube-scheduler-client',
    'proxy.conf': 'kube-proxy-client',
    'kubelet.conf': 'kubelet-client',
    'etcd-server': 'etcd-server',
    'etcd-peer': 'etcd-peer',
    'apiserver-etcd-client': 'etcd-apiserver-client',
  };
  return map[name] ?? name;
}

/** Checks a supplied leaf: chains to its CA, key matches, not expired, SANs cover what the table needs. */
export async function validateSuppliedLeaf(
  backend: CryptoBackend,
  field: string,
  given: { crt?: string; key?: string },
  ca: CaMaterial,
  template: CertificateTemplate,
  now = new Date(),
  caName?: CaName,
): Promise<IssuedCert> {
  if (!given.crt || !given.key) throw new PkiError(`${field}-${given.crt ? 'key' : 'crt'}`, 'both the certificate and its key must be supplied');
  let info;
  try {
    info = backend.parseCertificate(given.crt);
  } catch (err) {
    throw new PkiError(`${field}-crt`, (err as Error).message);
  }
  if (!(await backend.keyMatchesCertificate(given.key, given.crt))) throw new PkiError(`${field}-key`, `does not match ${field}-crt`);
  const trusted = [ca.cert, ...(ca.extraTrust ?? [])];
  let chained = false;
  for (const t of trusted) if (await backend.verifyIssuedBy(given.crt, t)) chained = true;
  const caLabel = caName === 'kubelet-ca' ? 'kubelet CA (kubelet-ca)' : template.extKeyUsage?.includes('serverAuth') ? 'server CA' : 'client CA';
  if (!chained) throw new PkiError(`${field}-crt`, `is not signed by the cluster's ${caLabel}`);
  if (info.notAfter <= now) throw new PkiError(`${field}-crt`, `expired on ${info.notAfter.toISOString()}`);
  if (info.notBefore > now) throw new PkiError(`${field}-crt`, `is not valid before ${info.notBefore.toISOString()}`);
  const missingIps = (template.ipAddresses ?? []).filter((ip) => !info.ipAddresses.includes(ip.toLowerCase()) && !ip.startsWith('::1') && ip !== '127.0.0.1');
  const missingDns = (template.dnsNames ?? []).filter((d) => !info.dnsNames.includes(d));
  if (template.extKeyUsage?.includes('serverAuth') && (missingIps.length || missingDns.length)) {
    throw new PkiError(`${field}-crt`, `is missing SANs ${[...missingDns, ...missingIps].join(', ')}`);
  }
  return { cert: given.crt, key: given.key, external: true };
}

/** Issues (or validates, when supplied) every leaf and kubeconfig certificate for a node role. */
export async function issueNodeCertificates(
  backend: CryptoBackend,
  cas: Record<CaName, CaMaterial>,
  node: NodeIdentity,
  role: NodeRole,
  options: IssueOptions,
  supplied: Partial<Record<string, { crt?: string; key?: string }>> = {},
  only?: Set<string>,
): Promise<{ leaves: Record<string, IssuedCert>; kubeconfigs: Record<string, IssuedCert> }> {
  const now = options.now ?? new Date();
  const lifetime = options.leafLifetimeMs ?? LEAF_LIFETIME_DAYS * DAY_MS;
  const leaves: Record<string, IssuedCert> = {};
  const kubeconfigs: Record<string, IssuedCert> = {};
  const issue = async (spec: LeafSpec | KubeconfigSpec, target: Record<string, IssuedCert>): Promise<void> => {
    if (!spec.roles.includes(role) || (only && !only.has(spec.name))) return;
    const template = leafTemplate(spec, node, lifetime, now);
    const ca = cas[spec.issuer];
    const field = suppliedKeyFor(spec.name);
    const given = supplied[field];
    if (given?.crt || given?.key) {
      target[spec.name] = await validateSuppliedLeaf(backend, field, given, ca, template, now, spec.issuer);
      return;
    }
    if (!ca.key) {
      throw new PkiError(`${field}-crt`, `the ${spec.issuer} CA was supplied without its key, so ${spec.name} must be supplied too`);
    }
    const key = await backend.generateKeyPair(options.keyType);
    const issuer: Issuer = { certificatePem: ca.cert, privateKeyPem: ca.key };
    target[spec.name] = { cert: await backend.createCertificate(template, key, issuer), key: key.privateKeyPem, external: false };
  };
  await Promise.all([...LEAVES.map((l) => issue(l, leaves)), ...KUBECONFIGS.map((k) => issue(k, kubeconfigs))]);
  return { leaves, kubeconfigs };
}

export async function generateServiceAccountKey(backend: CryptoBackend, keyType: KeyAlgorithm): Promise<string> {
  // The apiserver signs service-account tokens with RS256 or ES256; both are fine.
  return (await backend.generateKeyPair(keyType)).privateKeyPem;
}

/** Renders a kubeconfig with embedded credentials. */
/**
 * A kubeconfig with the cluster CA bundle embedded. The client certificate and key are embedded
 * too, or, given `files`, named by path (a client that reloads them; see KubeconfigSpec.reloads).
 */
export function renderKubeconfig(server: string, caPems: string[], cert: string, key: string, files?: ClientCertFiles): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const user = files ? { 'client-certificate': files.cert, 'client-key': files.key } : { 'client-certificate-data': b64(cert), 'client-key-data': b64(key) };
  return yaml.dump({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'k8s', cluster: { server, 'certificate-authority-data': b64(caPems.join('')) } }],
    users: [{ name: 'k8s-user', user }],
    contexts: [{ name: 'k8s', context: { cluster: 'k8s', user: 'k8s-user' } }],
    'current-context': 'k8s',
    preferences: {},
  });
}

export interface ClientCertFiles {
  cert: string;
  key: string;
}

/** Where a reloading kubeconfig's client certificate and key live; undefined for a kubeconfig that embeds them. */
export function kubeconfigCertFiles(layout: Layout, name: string): ClientCertFiles | undefined {
  if (!KUBECONFIGS.find((k) => k.name === name)?.reloads) return undefined;
  const base = name.replace(/\.conf$/, '');
  return { cert: layout.pki(`${base}-kubeconfig.crt`), key: layout.pki(`${base}-kubeconfig.key`) };
}

/**
 * The files of one kubeconfig: for a client that reloads its certificate, the key, the
 * certificate and then the kubeconfig that names them; otherwise the kubeconfig alone.
 */
export function kubeconfigFiles(layout: Layout, name: string, server: string, caPems: string[], cert: string, key: string): FileSpec[] {
  const files = kubeconfigCertFiles(layout, name);
  const kubeconfig: FileSpec = { path: layout.kubeconfig(name), content: renderKubeconfig(server, caPems, cert, key, files), mode: 0o600 };
  if (!files) return [kubeconfig];
  return [
    { path: files.key, content: key, mode: 0o600 },
    { path: files.cert, content: cert, mode: 0o644 },
    kubeconfig,
  ];
}

/** The client certificate and key of a kubeconfig's first user, embedded or named by path. */
export function kubeconfigClient(text: string): { cert: string | undefined; key: string | undefined } {
  const doc = yaml.load(text, { schema: yaml.CORE_SCHEMA }) as { users?: Array<{ user?: Record<string, string> }> } | undefined;
  return kubeconfigUserPair(doc?.users?.[0]?.user ?? {});
}

/** The client certificate and key of a parsed kubeconfig user, embedded or named by path. */
export function kubeconfigUserPair(u: Record<string, string>): { cert: string | undefined; key: string | undefined } {
  const read = (data: string | undefined, file: string | undefined): string | undefined =>
    data ? Buffer.from(data, 'base64').toString() : file && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  return { cert: read(u['client-certificate-data'], u['client-certificate']), key: read(u['client-key-data'], u['client-key']) };
}

/** The same kubeconfig with every cluster's server set to `server` (already validated), re-rendered as YAML. */
export function kubeconfigWithServer(text: string, server: string): string {
  const doc = yaml.load(text, { schema: yaml.CORE_SCHEMA }) as { clusters?: Array<{ cluster?: { server?: string } }> };
  for (const c of doc.clusters ?? []) if (c.cluster) c.cluster.server = server;
  return yaml.dump(doc);
}

/** Trust bundle for a CA: the CA itself plus anything trusted alongside it during rotation. */
export function trustBundle(ca: CaMaterial): string {
  return [ca.cert, ...(ca.extraTrust ?? [])].map((p) => (p.endsWith('\n') ? p : p + '\n')).join('');
}

/** A leaf issued by `ca`, followed by the CA's chain (if any): what a server sends in its handshake. */
export function withChain(cert: string, ca: CaMaterial): string {
  return [cert, ...(ca.chain ?? [])].map((p) => (p.endsWith('\n') ? p : p + '\n')).join('');
}

/** Turns a bundle into files under the layout (keys 0600). */
export function pkiFiles(layout: Layout, bundle: Partial<PkiBundle>, apiServer: string, role: NodeRole): FileSpec[] {
  const files: FileSpec[] = [];
  for (const ca of CAS) {
    const m = bundle.cas?.[ca.name];
    if (!m) continue;
    files.push({ path: layout.pki(ca.certFile), content: trustBundle(m), mode: 0o644 });
    if (m.key && role === 'control-plane') files.push({ path: layout.pki(ca.keyFile), content: m.key, mode: 0o600 });
  }
  for (const leaf of LEAVES) {
    const c = bundle.leaves?.[leaf.name];
    if (!c) continue;
    files.push({ path: layout.pki(leaf.certFile), content: c.cert, mode: 0o644 });
    files.push({ path: layout.pki(leaf.keyFile), content: c.key, mode: 0o600 });
  }
  for (const kc of KUBECONFIGS) {
    const c = bundle.kubeconfigs?.[kc.name];
    const ca = bundle.cas?.ca;
    if (!c || !ca) continue;
    files.push(...kubeconfigFiles(layout, kc.name, apiServer, [trustBundle(ca)], c.cert, c.key));
  }
  if (bundle.serviceAccountKey) {
    files.push({ path: layout.pki(SERVICE_ACCOUNT_KEY), content: bundle.serviceAccountKey, mode: 0o600 });
  }
  if (bundle.serviceAccountPub) {
    files.push({ path: layout.pki(SERVICE_ACCOUNT_PUB), content: bundle.serviceAccountPub, mode: 0o644 });
  }
  return files;
}

