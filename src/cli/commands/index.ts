// Explicit command registry (fast start-up: oclif loads no manifest scan).
import Bootstrap from './bootstrap.js';
import CertsStatus from './certs-status.js';
import RefreshCerts from './refresh-certs.js';
import RotateCertsCa from './rotate-certs-ca.js';
import SecretsEncryption from './secrets-encryption.js';
import Config from './config.js';
import Kubectl from './kubectl.js';
import Status from './status.js';

export const COMMANDS = {
  bootstrap: Bootstrap,
  'certs-status': CertsStatus,
  'refresh-certs': RefreshCerts,
  'rotate-certs-ca': RotateCertsCa,
  'secrets-encryption': SecretsEncryption,
  config: Config,
  kubectl: Kubectl,
  status: Status,
};
