// TLS options for k8sd's own HTTPS listener and clients: TLS 1.2+ with ECDHE + AES-GCM only.
import { SecureContextOptions } from 'node:tls';

export function serverTlsOptions(): SecureContextOptions & { honorCipherOrder: boolean } {
  return {
    minVersion: 'TLSv1.2',
    ciphers: 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256',
    ecdhCurve: 'P-256:P-384',
    honorCipherOrder: true,
  };
}
