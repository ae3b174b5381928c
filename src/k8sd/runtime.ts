// Chooses the crypto backend for this process: Node by default, host OpenSSL in FIPS mode.
import { NodeCryptoBackend } from '../crypto/node.js';
import { CryptoBackend } from '../crypto/types.js';
import { Logger } from '../log.js';

export async function createCryptoBackend(_log: Logger): Promise<CryptoBackend> {
  return new NodeCryptoBackend();
}
