// Online CA rotation of the server CA, the client CA and the front-proxy CA.
//  1. trust:   a new CA per kind goes into every trust bundle next to the old one;
//  2. reissue: every leaf and kubeconfig is re-issued under the new CAs; the apiserver
//              serves its new leaf with the new CA cross-signed by the old one, so
//              clients that trust only the old CA keep working;
//  3. retire:  the old CAs leave the bundles.
// kube-apiserver reloads its serving certificate, client CA, front-proxy CA and kubelet
// client certificate from disk by itself, so it is never restarted: the API serves throughout.
// The etcd CA is internal to the control plane and is not part of the online rotation.
import https from 'node:https';
import tls from 'node:tls';
import { CaMaterial, caTemplate, generateCa, trustBundle } from '../../pki/signer.js';
import { CAS, CaName, KUBECONFIGS, LEAVES } from '../../pki/table.js';
import { readExternal } from './inventory.js';
import { commitFileSet, FileSpec } from '../../host/files.js';
import { apiServerUrl } from '../../services/specs.js';
import { ApiError } from '../http.js';
import type { K8sd } from '../daemon.js';
import { clusterContext, refreshControlPlane } from './refresh.js';

export const ROTATED_CAS: CaName[] = ['ca', 'client-ca', 'front-proxy-ca'];

export type RotationEvent = { type: 'step'; step: string; title: string };

function caFiles(d: K8sd, cas: Record<CaName, CaMaterial>): FileSpec[] {
  const files: FileSpec[] = [];
  for (const spec of CAS.filter((c) => ROTATED_CAS.includes(c.name))) {
    const m = cas[spec.name];
    files.push({ path: d.layout.pki(spec.certFile), content: trustBundle(m), mode: 0o644 });
    if (m.key) files.push({ path: d.layout.pki(spec.keyFile), content: m.key, mode: 0o600 });
  }
  return files;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

/** True when the apiserver authenticates a client certificate signed by `clientCa` (403 or 200, not 401). */
async function apiserverTrustsClientCa(d: K8sd, server: string, clientCa: CaMaterial): Promise<boolean> {
  const key = await d.crypto.generateKeyPair('ecdsa-p256');
  const now = new Date();
  const cert = await d.crypto.createCertificate(
    { subject: { commonName: 'k8sd:ca-rotation-probe' }, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'], notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 600_000) },
    key,
    { certificatePem: clientCa.cert, privateKeyPem: clientCa.key! },
  );
  const status = await new Promise<number>((resolve, reject) => {
    const req = https.request(`${server}/api`, { cert, key: key.privateKeyPem, rejectUnauthorized: false, timeout: 3000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  return status === 403 || status === 200;
}

/** Issuer common name of the certificate the apiserver serves now. */
function servedIssuer(server: string): Promise<string> {
  const u = new URL(server);
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false, servername: 'kubernetes' }, () => {
      const issuer = sock.getPeerCertificate().issuer?.CN ?? '';
      sock.end();
      resolve(Array.isArray(issuer) ? issuer[0]! : issuer);
    });
    sock.on('error', reject);
  });
}

export async function rotateCas(d: K8sd, onEvent: (e: RotationEvent) => void): Promise<{ cas: Record<string, string> }> {
  const { node, config, pki } = await clusterContext(d);
  if (ROTATED_CAS.some((n) => !pki.cas[n].key)) {
    throw new ApiError(400, 'a CA was supplied without its key (externally managed); rotate it with your own PKI and install the results with refresh-certs --external-certificates');
  }
  const external = readExternal(d.layout).certificates;
  // An external certificate cannot be re-issued under the new CA, and once the old CA is
  // retired nothing trusts it: refuse before changing anything (the apiserver's would hang
  // the re-issue step and leave every bundle half-rotated).
  const stuck = [...LEAVES, ...KUBECONFIGS].filter((s) => s.roles.includes('control-plane') && ROTATED_CAS.includes(s.issuer) && external.includes(s.name));
  if (stuck.length) {
    const names = stuck.map((s) => s.name).join(', ');
    throw new ApiError(400, `${names}: externally managed and signed by a CA that the rotation replaces; rotate with your own PKI and install the results with refresh-certs --external-certificates`);
  }
  const rotatedCerts = [...LEAVES, ...KUBECONFIGS]
    .filter((s) => s.roles.includes('control-plane') && ROTATED_CAS.includes(s.issuer) && !external.includes(s.name))
    .map((s) => s.name);
  const server = apiServerUrl({ nodeAddress: node.address, securePort: node.securePort });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 13);
  const old = pki.cas;
  const fresh = {} as Record<CaName, CaMaterial>;
  const cross = {} as Record<CaName, string>;

  onEvent({ type: 'step', step: 'trust', title: 'Adding new CAs to every trust bundle' });
  for (const name of ROTATED_CAS) {
    const spec = CAS.find((c) => c.name === name)!;
    const cn = `${spec.commonName}-${stamp}`;
    fresh[name] = await generateCa(d.crypto, cn, config.keyType);
    cross[name] = await d.crypto.crossSign(fresh[name].cert, caTemplate(cn), { certificatePem: old[name].cert, privateKeyPem: old[name].key! });
  }
  const both = { ...old } as Record<CaName, CaMaterial>;
  for (const name of ROTATED_CAS) both[name] = { cert: old[name].cert, key: old[name].key!, extraTrust: [fresh[name].cert] };
  commitFileSet(caFiles(d, both), d.layout.k8sdStateDir);
  await d.state!.putPki({ ...pki, cas: both });
  await until('kube-apiserver to trust the new client CA', 120_000, () => apiserverTrustsClientCa(d, server, fresh['client-ca']));

  onEvent({ type: 'step', step: 'reissue', title: 'Re-issuing certificates and kubeconfigs under the new CAs' });
  const next = { ...old } as Record<CaName, CaMaterial>;
  for (const name of ROTATED_CAS) next[name] = { cert: fresh[name].cert, key: fresh[name].key!, extraTrust: [old[name].cert] };
  await refreshControlPlane(d, { certificates: rotatedCerts, cas: next, chains: { apiserver: cross.ca } });
  await d.state!.putPki({ ...pki, cas: next });
  const newCaCn = d.crypto.parseCertificate(fresh.ca.cert).subject.commonName;
  await until('kube-apiserver to serve its certificate from the new CA', 120_000, async () => (await servedIssuer(server)) === newCaCn);

  onEvent({ type: 'step', step: 'retire', title: 'Retiring the old CAs' });
  const final = { ...old } as Record<CaName, CaMaterial>;
  for (const name of ROTATED_CAS) final[name] = { cert: fresh[name].cert, key: fresh[name].key! };
  // Kubeconfigs and the apiserver chain drop the old CA; leaves keep their keys' new issuer.
  await refreshControlPlane(d, { certificates: rotatedCerts, cas: final });
  commitFileSet(caFiles(d, final), d.layout.k8sdStateDir);
  await d.state!.putPki({ ...pki, cas: final });
  d.log.info('CA rotation complete', { cas: ROTATED_CAS });
  return { cas: Object.fromEntries(ROTATED_CAS.map((n) => [n, d.crypto.parseCertificate(fresh[n].cert).subject.commonName])) };
}
