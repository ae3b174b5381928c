// Cluster API (HTTPS :6400, mutual TLS): what k8sd nodes ask of each other. Replies are typed by
// the daemon modules that serve them; here are the paths and the request schemas every route parses.
import type { EncryptionKeys } from '../security/manager.js';
import { endpoint, noBody, type Zod } from './endpoint.js';

const nodeName = (z: Zod) => z.string();

/** Who answers: any member may ask. */
export const nodeIdentity = endpoint<{ name: string; role: 'control-plane' | 'worker' }>()({ method: 'GET', path: '/1.0', request: noBody });

/** A joining node's request (untrusted: authenticated by its token). */
export const memberJoin = endpoint<unknown>()({
  method: 'POST',
  path: '/1.0/k8sd/members/join',
  request: (z) => z.object({
    token: z.object({ name: z.string(), secret: z.string() }),
    role: z.enum(['control-plane', 'worker']),
    node: z.object({ name: nodeName(z), address: z.string(), clusterCert: z.string() }),
    /** Worker only: PEM CSRs for kubelet.conf and proxy.conf (keys stay on the worker). */
    csrs: z.record(z.string(), z.string()).optional(),
    /** Whether the joining k8sd runs in FIPS mode (a FIPS cluster admits only such nodes). */
    fips: z.boolean().optional(),
  }),
});
export const memberPromote = endpoint<unknown>()({ method: 'POST', path: '/1.0/k8sd/members/promote', request: (z) => z.object({ name: nodeName(z), memberId: z.string() }) });
export const memberAbort = endpoint<{ aborted: boolean }>()({ method: 'POST', path: '/1.0/k8sd/members/abort', request: (z) => z.object({ name: nodeName(z), memberId: z.string().optional() }) });
export const members = endpoint<unknown>()({ method: 'GET', path: '/1.0/k8sd/members', request: noBody });
/** A worker's renewed client certificates: PEM CSRs by certificate name. */
export const memberCertificates = endpoint<unknown>()({
  method: 'POST',
  path: '/1.0/k8sd/members/certificates',
  request: (z) => z.object({ name: nodeName(z), csrs: z.record(z.string(), z.string()) }),
});
export const memberLeave = endpoint<{ leaving: string | false }>()({ method: 'POST', path: '/1.0/k8sd/members/leave', request: (z) => z.object({ name: z.string().optional() }) });

export const CA_ROTATION_PHASES = ['trust', 'reissue', 'retire'] as const;
export const caRotationCheck = endpoint<{ name: string; role: 'control-plane' | 'worker'; external: string[] }>()({ method: 'POST', path: '/1.0/k8sd/ca-rotation/check', request: noBody });
export const caRotationApply = endpoint<{ node: string; role: string; detail: string }>()({
  method: 'POST',
  path: '/1.0/k8sd/ca-rotation/apply',
  request: (z) => z.object({
    id: z.string(),
    phase: z.enum(CA_ROTATION_PHASES),
    worker: z.object({ caCert: z.string(), clientCaCert: z.string(), servingIssuer: z.string().optional() }).optional(),
  }),
});

const KEYS_PATH = '/1.0/k8sd/secrets-encryption/keys';
/** Key material as the security manager holds it; its own validation runs when the keys are installed. */
const encryptionKeys = (z: Zod) => z.looseObject({ provider: z.enum(['kms', 'aesgcm']) }).pipe(z.custom<EncryptionKeys>());
export const encryptionKeysGet = endpoint<unknown>()({ method: 'GET', path: KEYS_PATH, request: noBody });
export const encryptionKeysSummary = endpoint<unknown>()({ method: 'GET', path: `${KEYS_PATH}/summary`, request: noBody });
const keyChange = (z: Zod) => z.object({ keys: encryptionKeys(z), keyId: z.string() });
export const encryptionKeysStage = endpoint<unknown>()({ method: 'POST', path: `${KEYS_PATH}/stage`, request: keyChange });
export const encryptionKeysActivate = endpoint<unknown>()({ method: 'POST', path: `${KEYS_PATH}/activate`, request: keyChange });
export const encryptionKeysDiscard = endpoint<unknown>()({ method: 'POST', path: `${KEYS_PATH}/discard`, request: (z) => z.object({ keyId: z.string() }) });
