// Times generation of the full control-plane PKI (4 CAs, 8 leaves, 5 kubeconfig client certs,
// service-account key) with one crypto backend. Usage: node tests/bench/pki.mjs [node|openssl-fips] [runs]
import { NodeCryptoBackend } from '../../dist/crypto/node.js';
import { OpenSSLCryptoBackend } from '../../dist/crypto/openssl.js';
import { ensureCas, issueNodeCertificates, generateServiceAccountKey } from '../../dist/pki/signer.js';

const kind = process.argv[2] ?? 'node';
const runs = Number(process.argv[3] ?? 5);
const provider = process.env.FIPS_PROVIDER_DIR;
const backend = kind === 'node'
  ? new NodeCryptoBackend()
  : new OpenSSLCryptoBackend({ fips: true, env: { OPENSSL_CONF: `${provider}/openssl.cnf`, OPENSSL_MODULES: provider } });
const node = { hostname: 'bench', address: '10.0.0.5', localAddresses: ['10.0.0.5'], serviceIps: ['10.152.183.1'], extraSans: [], clusterDomain: 'cluster.local' };
const times = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  const cas = await ensureCas(backend, 'ecdsa-p256', {});
  await issueNodeCertificates(backend, cas, node, 'control-plane', { keyType: 'ecdsa-p256' });
  await generateServiceAccountKey(backend, 'ecdsa-p256');
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ backend: kind, runs, medianMs: Math.round(times[Math.floor(runs / 2)]), minMs: Math.round(times[0]), maxMs: Math.round(times[runs - 1]) }));
