// Local API: join tokens, joining this node to a cluster, removing a node.
import { endpoint, noBody } from './endpoint.js';

export interface IssuedToken {
  name: string;
  role: 'control-plane' | 'worker';
  token: string;
  expiresAt: string;
}

export interface TokenInfo {
  name: string;
  role: 'control-plane' | 'worker';
  bound: boolean;
  createdAt: string;
  expiresAt: string;
  expired: boolean;
  issuedBy?: string;
  /** The address the operator allowed the node to join with, other than its connection's source. */
  address?: string;
}

export interface JoinResult {
  name: string;
  address: string;
  role: 'control-plane' | 'worker';
  seconds: number;
}

export interface RemoveResult {
  removed: string;
  self: boolean;
  warnings: string[];
}

export const issueToken = endpoint<IssuedToken>()({
  method: 'POST',
  path: '/1.0/k8sd/cluster/tokens',
  request: (z) => z.object({ name: z.string().optional(), worker: z.boolean().optional(), expiresInSeconds: z.number().optional(), address: z.string().optional() }),
});
export const listTokens = endpoint<{ tokens: TokenInfo[] }>()({ method: 'GET', path: '/1.0/k8sd/cluster/tokens', request: noBody });
export const revokeToken = endpoint<{ revoked: string }>()({ method: 'POST', path: '/1.0/k8sd/cluster/tokens/revoke', request: (z) => z.object({ name: z.string().optional() }) });
export const join = endpoint<JoinResult>()({
  method: 'POST',
  path: '/1.0/k8sd/cluster/join',
  streams: true,
  request: (z) => z.object({ token: z.string().optional(), name: z.string().optional(), address: z.string().optional(), config: z.string().optional(), timeoutSeconds: z.number().positive().optional() }),
});
export const removeNode = endpoint<RemoveResult>()({ method: 'POST', path: '/1.0/k8sd/cluster/remove', request: (z) => z.object({ name: z.string().optional(), force: z.boolean().optional() }) });
/** Workers: renew certificates through the control plane (refresh-certs and automatic renewal). */
export const renewWorkerCertificates = endpoint<{ renewed: string[]; restarted: string[] }>()({
  method: 'POST',
  path: '/1.0/k8sd/worker/certificates/renew',
  request: (z) => z.object({ certificates: z.array(z.string()).optional() }),
});
