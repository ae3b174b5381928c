// PKI generation time with the Node crypto backend: the full control-plane set (4 CAs, every
// leaf, every kubeconfig client certificate, the service-account key) as bootstrap makes it,
// plus rendering it into files (kubeconfigs included). Timed in-process: Node start-up excluded.
// Usage: node tests/bench/pki-gen.mjs [runs] [key-type...]   prints one JSON line per key type.
import { performance } from 'node:perf_hooks';
import { ensureCas, generateServiceAccountKey, issueNodeCertificates, pkiFiles } from '../../dist/pki/signer.js';
import { NodeCryptoBackend } from '../../dist/crypto/node.js';
import { Layout } from '../../dist/layout.js';

const runs = Number(process.argv[2] ?? 5);
const keyTypes = process.argv.length > 3 ? process.argv.slice(3) : ['ecdsa-p256', 'rsa-2048'];
const backend = new NodeCryptoBackend();
const node = {
  hostname: 'bench-cp',
  address: '10.0.0.5',
  localAddresses: ['127.0.0.1', '10.0.0.5'],
  serviceIps: ['10.152.183.1'],
  extraSans: [],
  clusterDomain: 'cluster.local',
};
const layout = new Layout({ K8S_ROOT: '/nonexistent-bench-root' });

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

for (const keyType of keyTypes) {
  const times = [];
  let counts;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const cas = await ensureCas(backend, keyType, {});
    const { leaves, kubeconfigs } = await issueNodeCertificates(backend, cas, node, 'control-plane', { keyType });
    const serviceAccountKey = await generateServiceAccountKey(backend, keyType);
    const bundle = { cas, leaves, kubeconfigs, serviceAccountKey, serviceAccountPub: await backend.publicKeyOf(serviceAccountKey) };
    const files = pkiFiles(layout, bundle, 'https://127.0.0.1:6443', 'control-plane');
    times.push(performance.now() - t0);
    counts = { cas: Object.keys(cas).length, leaves: Object.keys(leaves).length, kubeconfigs: Object.keys(kubeconfigs).length, files: files.length };
  }
  console.log(JSON.stringify({ keyType, runs, medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times), ...counts }));
}
