// Adapter between k8sd and the security modules (audit, admission, encryption at rest).
import { SecurityProvider } from './flows/bootstrap.js';
import type { K8sd } from './daemon.js';

export function createSecurityProvider(_d: K8sd): SecurityProvider {
  return {
    files: async () => [],
    apiserverArgs: () => ({}),
    beforeApiserver: async () => {},
    stop: async () => {},
  };
}
