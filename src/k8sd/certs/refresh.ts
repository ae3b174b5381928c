// refresh-certs on a control-plane node: re-sign locally, write the whole set atomically,
// then restart only the services whose certificates changed.
import yaml from 'js-yaml';
import { ClusterConfig, LocalNodeState, PkiRecord } from '../../datastore/state.js';
import { commitFileSet, CommitProbe, FileSpec } from '../../host/files.js';
import { CaMaterial, IssuedCert, issueNodeCertificates, kubeconfigCertFiles, pkiFiles, suppliedKeyFor, validateSuppliedLeaf, leafTemplate, withChain } from '../../pki/signer.js';
import { KUBECONFIGS, LEAVES, refreshableNames, CaName } from '../../pki/table.js';
import { apiServerUrl } from '../../services/specs.js';
import { ServiceId } from '../../services/specs.js';
import { ApiError } from '../http.js';
import { nodeIdentity } from '../controlplane.js';
import type { NodeContext } from '../node-context.js';
import type { CertsNode } from './node.js';
import { readExternal, reloadingKubeconfigs } from './inventory.js';
import { writeFileAtomic } from '../../host/files.js';
import { dropKubeletServingCert } from '../../services/worker-specs.js';
import type { RefreshResult } from '../../api/index.js';

export interface RefreshRequest {
  certificates?: string[];
  lifetimeMs?: number;
  extraSans?: string[];
  /** Use these CAs instead of the stored ones (CA rotation; a CA's `chain` is appended to its leaves). */
  cas?: Record<CaName, CaMaterial>;
}


/** Test hook: K8S_TEST_CRASH_REFRESH_AT=<n> kills k8sd after n renames of a file-set commit. */
export function crashProbe(): CommitProbe | undefined {
  const at = process.env.K8S_TEST_CRASH_REFRESH_AT;
  if (at === undefined) return undefined;
  return (done) => {
    if (done === Number(at)) process.kill(process.pid, 'SIGKILL');
  };
}

export async function clusterContext(d: NodeContext): Promise<{ node: LocalNodeState; config: ClusterConfig; pki: PkiRecord }> {
  const node = d.requireControlPlane();
  if (!d.state) throw new ApiError(503, 'the datastore is not connected yet; retry in a few seconds');
  const [config, pki] = await Promise.all([d.state.getConfig(), d.state.getPki()]);
  if (!config || !pki) throw new ApiError(500, 'the datastore holds no cluster configuration or PKI');
  return { node, config, pki };
}

/**
 * kube-apiserver re-reads these from disk by itself, so changing them needs no restart:
 * - its serving certificate, client CA and front-proxy client certificate (dynamic file content);
 * - its kubelet client certificate (client-go reloads client certificate files on a new connection);
 * - its etcd client certificate (etcd's client TLS config loads the files on every handshake; an
 *   established connection keeps the previous certificate, which is still valid).
 * Not restarting it is what keeps the API answering through refresh-certs (issue 17).
 */
export const RELOADED_BY_APISERVER = new Set(['apiserver', 'apiserver-kubelet-client', 'front-proxy-client', 'apiserver-etcd-client']);
/** etcd reads its serving and peer certificates on every TLS handshake, so it needs no restart either. */
export const RELOADED_BY_ETCD = new Set(['etcd-server', 'etcd-peer']);

/** Services to restart when these certificates change; `reloading` names kubeconfigs whose clients pick up the new certificate by themselves. */
export function servicesFor(names: string[], reloading: ReadonlySet<string> = new Set()): ServiceId[] {
  const out = new Set<string>();
  for (const n of names) {
    if (RELOADED_BY_APISERVER.has(n) || RELOADED_BY_ETCD.has(n) || reloading.has(n)) continue;
    const spec = LEAVES.find((l) => l.name === n) ?? KUBECONFIGS.find((k) => k.name === n);
    for (const s of spec?.services ?? []) if (s !== 'k8sd') out.add(s);
  }
  return [...out] as ServiceId[];
}

export async function restartServices(d: Pick<CertsNode, 'host' | 'serviceStates'>, services: ServiceId[]): Promise<string[]> {
  const order: ServiceId[] = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'flanneld', 'kube-proxy'];
  const running = new Set((await d.serviceStates()).map((s) => s.name));
  const done: string[] = [];
  for (const s of order.filter((x) => services.includes(x) && running.has(x))) {
    await d.host.services.restart(s);
    done.push(s);
  }
  return done;
}

export async function refreshControlPlane(d: CertsNode, req: RefreshRequest): Promise<RefreshResult> {
  const { node, config, pki } = await clusterContext(d);
  const allowed = refreshableNames('control-plane');
  const external = readExternal(d.layout).certificates;
  const requested = req.certificates?.length ? req.certificates : allowed.filter((n) => !external.includes(n));
  for (const n of requested) {
    if (!allowed.includes(n)) throw new ApiError(400, `unknown certificate "${n}"; choose from ${allowed.join(', ')}`);
    if (external.includes(n)) throw new ApiError(400, `"${n}" is externally managed; replace it with --external-certificates`);
  }
  const cas = req.cas ?? pki.cas;
  const identity = nodeIdentity(d.host, node, config, req.extraSans ?? []);
  const lifetimeMs = req.lifetimeMs ?? config.certificates.lifetimeMs;
  const issued = await issueNodeCertificates(d.crypto, cas, identity, 'control-plane', { keyType: config.keyType, leafLifetimeMs: lifetimeMs }, {}, new Set(requested));
  for (const [name, c] of Object.entries(issued.leaves)) c.cert = withChain(c.cert, cas[LEAVES.find((l) => l.name === name)!.issuer]);
  const files = selectFiles(d, cas, issued, requested, node);
  // Decided before the write (it compares with the kubeconfigs on disk).
  const reloading = reloadingKubeconfigs(d.layout, d.crypto, requested, files);
  commitFileSet(files, d.layout.k8sdStateDir, crashProbe());
  // The kubelet serves what its kubelet-serving CSR brought (serverTLSBootstrap) and keeps it in memory:
  // without that file the restarted kubelet asks for a new one, which k8sd signs.
  if (requested.includes('kubelet')) dropKubeletServingCert(d.layout);
  if (requested.includes('k8sd-etcd-client')) await d.reconnectDatastore();
  const restarted = await restartServices(d, servicesFor(requested, reloading));
  const expires = new Date(Date.now() + lifetimeMs).toISOString();
  d.log.info('refreshed certificates', { certificates: requested, expires, restarted });
  return { certificates: requested, expires, restarted };
}

function selectFiles(d: Pick<NodeContext, 'layout'>, cas: Record<CaName, CaMaterial>, issued: { leaves: Record<string, IssuedCert>; kubeconfigs: Record<string, IssuedCert> }, names: string[], node: LocalNodeState): FileSpec[] {
  const server = apiServerUrl({ nodeAddress: node.address, securePort: node.securePort });
  const all = pkiFiles(d.layout, { cas, leaves: issued.leaves, kubeconfigs: issued.kubeconfigs }, server, 'control-plane');
  const wanted = new Set<string>();
  for (const n of names) {
    const leaf = LEAVES.find((l) => l.name === n);
    if (leaf) {
      wanted.add(d.layout.pki(leaf.certFile));
      wanted.add(d.layout.pki(leaf.keyFile));
    }
    if (KUBECONFIGS.some((k) => k.name === n)) {
      wanted.add(d.layout.kubeconfig(n));
      const certFiles = kubeconfigCertFiles(d.layout, n);
      if (certFiles) wanted.add(certFiles.cert).add(certFiles.key);
    }
  }
  return all.filter((f) => wanted.has(f.path));
}

/** Installs user-supplied certificates after checking chain, key match, SANs and expiry. */
export async function installExternal(d: CertsNode, text: string): Promise<RefreshResult> {
  const { node, config, pki } = await clusterContext(d);
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch (err) {
    throw new ApiError(400, `external certificates: not valid YAML: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new ApiError(400, 'external certificates: expected a mapping of <name>-crt / <name>-key');
  const given = doc as Record<string, string>;
  const identity = nodeIdentity(d.host, node, config);
  const leaves: Record<string, IssuedCert> = {};
  const kubeconfigs: Record<string, IssuedCert> = {};
  const names: string[] = [];
  const known = new Set<string>();
  for (const spec of [...LEAVES, ...KUBECONFIGS].filter((s) => s.roles.includes('control-plane'))) {
    const field = suppliedKeyFor(spec.name);
    known.add(`${field}-crt`).add(`${field}-key`);
    if (!given[`${field}-crt`] && !given[`${field}-key`]) continue;
    const template = leafTemplate(spec, identity, config.certificates.lifetimeMs);
    try {
      const c = await validateSuppliedLeaf(d.crypto, field, { crt: given[`${field}-crt`], key: given[`${field}-key`] }, pki.cas[spec.issuer], template);
      ('certFile' in spec ? leaves : kubeconfigs)[spec.name] = c;
      names.push(spec.name);
    } catch (err) {
      throw new ApiError(400, `external certificates: ${(err as Error).message}`);
    }
  }
  const unknown = Object.keys(given).filter((k) => !known.has(k));
  if (unknown.length) throw new ApiError(400, `external certificates: unknown key ${unknown[0]}; keys look like apiserver-crt / apiserver-key or admin-client-crt`);
  if (!names.length) throw new ApiError(400, 'external certificates: the file names no certificate');
  const files = selectFiles(d, pki.cas, { leaves, kubeconfigs }, names, node);
  const ext = readExternal(d.layout);
  ext.certificates = [...new Set([...ext.certificates, ...names])];
  commitFileSet([...files, { path: d.layout.externalCertsFile, content: JSON.stringify(ext) + '\n', mode: 0o600 }], d.layout.k8sdStateDir, crashProbe());
  const restarted = await restartServices(d, servicesFor(names));
  const expires = names.map((n) => d.crypto.parseCertificate((leaves[n] ?? kubeconfigs[n])!.cert).notAfter).sort((a, b) => a.getTime() - b.getTime())[0]!;
  return { certificates: names, expires: expires.toISOString(), restarted };
}

export { writeFileAtomic };
