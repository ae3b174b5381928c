// Local API: encryption of Secrets at rest (status, key rotation, re-encryption).
import { endpoint, noBody } from './endpoint.js';

export interface NodeKeyStatus {
  name: string;
  writeKeyId?: string;
  keyIds?: string[];
  stagedKeyIds?: string[];
  /** Why this node's keys could not be read. */
  error?: string;
}

export interface ClusterKeyStatus {
  nodes: NodeKeyStatus[];
  /** Every control-plane node answered, and all hold the same keys with the same write key. */
  keysAgree: boolean;
}

export interface EncryptionStatus {
  provider: string;
  writeKeyId: string | null;
  stage: string;
  controlPlane?: ClusterKeyStatus;
}

export interface ReencryptResult {
  rewritten: number;
  failed: number;
}

export interface KeyRotationResult extends Partial<ReencryptResult> {
  keyId: string;
  previousKeyId: string;
  nodes: string[];
}

export const encryptionStatus = endpoint<EncryptionStatus>()({ method: 'GET', path: '/1.0/k8sd/secrets-encryption', request: noBody });
export const rotateEncryptionKey = endpoint<KeyRotationResult>()({ method: 'POST', path: '/1.0/k8sd/secrets-encryption/rotate', request: (z) => z.object({ reencrypt: z.boolean().optional() }) });
export const reencryptSecrets = endpoint<ReencryptResult>()({ method: 'POST', path: '/1.0/k8sd/secrets-encryption/reencrypt', request: noBody });
