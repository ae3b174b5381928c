// Local API: certificate status, refresh (issued or externally supplied), renewal and CA rotation.
import { endpoint, noBody } from './endpoint.js';

export interface CertEntry {
  name: string;
  kind: 'certificate' | 'kubeconfig' | 'ca';
  file: string;
  subject: string;
  /** Common name of the issuing CA. */
  ca: string;
  notBefore: string;
  expires: string;
  residualSeconds: number;
  externallyManaged: boolean;
  services: string[];
  /** Renewed by the service that uses it (the kubelet's client certificate); k8sd renews it only as a backstop. */
  selfRenewing?: boolean;
}

export interface RefreshResult {
  certificates: string[];
  expires: string;
  restarted: string[];
}

export interface CaRotationResult {
  /** Each rotated CA's new common name. */
  cas: Record<string, string>;
  nodes: string[];
}

export const certsStatus = endpoint<{ node: string; role: string; certificates: CertEntry[] }>()({ method: 'GET', path: '/1.0/k8sd/certs-status', request: noBody });
export const refreshCerts = endpoint<RefreshResult>()({
  method: 'POST',
  path: '/1.0/k8sd/refresh-certs/run',
  request: (z) => z.object({ certificates: z.array(z.string()).optional(), expirationSeconds: z.number().optional(), extraSANs: z.array(z.string()).optional() }),
});
/** Installs externally managed certificates: YAML of <name>-crt/<name>-key pairs. */
export const installExternalCerts = endpoint<RefreshResult>()({ method: 'POST', path: '/1.0/k8sd/refresh-certs/update', request: (z) => z.object({ certificates: z.string().optional() }) });
export const renewCertsNow = endpoint<{ renewed: string[] }>()({ method: 'POST', path: '/1.0/k8sd/certs/renew-now', request: noBody });
export const rotateCa = endpoint<CaRotationResult>()({ method: 'POST', path: '/1.0/k8sd/rotate-ca', streams: true, request: noBody });
