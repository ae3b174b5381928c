// k8sd's start-up: FIPS mode and the re-run on the host FIPS provider (crypto/fips-runtime.ts,
// shared with the CLI), and the crypto backend (Node by default, host OpenSSL in FIPS mode).
import { NodeCryptoBackend } from '../crypto/node.js';
import { OpenSSLCryptoBackend } from '../crypto/openssl.js';
import { FipsMode } from '../crypto/fips.js';
import { withCryptoAudit } from '../crypto/audit.js';
import { CryptoBackend } from '../crypto/types.js';
import { Logger } from '../log.js';

export { fipsMode, reexecOnFipsRuntime } from '../crypto/fips-runtime.js';

export function createCryptoBackend(mode: FipsMode, log: Logger): CryptoBackend {
  const backend: CryptoBackend = mode.enabled
    ? new OpenSSLCryptoBackend({ fips: true, binary: mode.openssl.binary, env: mode.openssl.env, nodeRuntime: mode.runtime, nodeBinary: mode.nodeBinary })
    : new NodeCryptoBackend();
  // K8S_CRYPTO_AUDIT=1: a debug record of every crypto operation and the backend that ran it.
  return withCryptoAudit(backend, (e) => log.debug('crypto operation', { ...e }));
}
