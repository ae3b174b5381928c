// TLS options for k8sd's own HTTPS listener and clients: one source of truth in crypto/tls.
import { nodeTlsDefaults, NodeTlsDefaults } from '../crypto/tls.js';

export function serverTlsOptions(): NodeTlsDefaults {
  return nodeTlsDefaults();
}
