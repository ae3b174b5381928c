// The KMS v2 plugin that k8sd serves to kube-apiserver on a unix socket
// (gRPC service v2.KeyManagementService: Status, Encrypt, Decrypt).
//
// Encrypt wraps the DEK the apiserver sends under the current KEK of a KekStore;
// Decrypt picks the KEK by key_id; Status reports the current key_id, which is how
// the apiserver learns about a rotation. The service definition is loaded from
// kms-v2.proto at runtime (no codegen); see kmsProtoPath for where it is looked up.
import { existsSync } from 'node:fs';
import { chmod, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { installRoot } from '../layout.js';
import { CiphertextError, KmsCallError, KmsSocketError, SecurityError, UnknownKeyIdError } from './errors.js';
import { ensureSecretDir } from './files.js';
import type { KekStore } from './kek-ring.js';
import type { SecurityLogger } from './logger.js';

export { encryptionConfigYaml, aesgcmEncryptionConfigYaml, secretsEncryptionStatus } from './encryption.js';

/** Name of the provider in EncryptionConfiguration (no ':' allowed for v2). */
export const KMS_PROVIDER_NAME = 'k8sd-kms';
export const KMS_API_VERSION = 'v2';
const SERVICE_NAME = 'v2.KeyManagementService';
/** Linux sun_path holds 108 bytes including the terminating NUL. */
const MAX_UNIX_SOCKET_PATH_BYTES = 107;
/** Plaintext DEKs are < 1 kB and annotations < 32 kB; anything much larger is not the apiserver. */
const MAX_MESSAGE_BYTES = 64 * 1024;

export interface KmsStatus {
  version: string;
  healthz: string;
  keyId: string;
}

export interface KmsEncryptResult {
  ciphertext: Buffer;
  keyId: string;
  annotations: Record<string, Buffer>;
}

export interface KmsDecryptInput {
  ciphertext: Buffer;
  keyId: string;
  uid?: string;
  annotations?: Record<string, Buffer>;
}

// Wire messages, with field names as in the .proto (keepCase).
interface StatusResponseMessage { version: string; healthz: string; key_id: string }
interface EncryptRequestMessage { plaintext: Buffer; uid: string }
interface EncryptResponseMessage { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> }
interface DecryptRequestMessage { ciphertext: Buffer; uid: string; key_id: string; annotations: Record<string, Buffer> }
interface DecryptResponseMessage { plaintext: Buffer }

/**
 * Path of kms-v2.proto: next to this module (src/ under vitest, or dist/security/ when the build
 * copies it), else the build's copy under the install root (k8sd's bundle, dist/k8sd/main.js, is
 * not next to it), else the source copy (a checkout).
 */
export function kmsProtoPath(): string {
  const candidates = [
    fileURLToPath(new URL('./kms-v2.proto', import.meta.url)),
    path.join(installRoot, 'dist', 'security', 'kms-v2.proto'),
    path.join(installRoot, 'src', 'security', 'kms-v2.proto'),
  ];
  return candidates.find((candidate) => existsSync(candidate)) ?? candidates[0]!;
}

type KmsServiceDefinition = protoLoader.ServiceDefinition & {
  Status: protoLoader.MethodDefinition<object, object>;
  Encrypt: protoLoader.MethodDefinition<object, object>;
  Decrypt: protoLoader.MethodDefinition<object, object>;
};

function isServiceDefinition(value: protoLoader.AnyDefinition | undefined): value is KmsServiceDefinition {
  return value !== undefined && !('format' in value) && ['Status', 'Encrypt', 'Decrypt'].every((m) => m in value);
}

let cachedDefinition: KmsServiceDefinition | undefined;

/** Loads v2.KeyManagementService from kms-v2.proto. */
export function kmsServiceDefinition(protoFile: string = kmsProtoPath()): KmsServiceDefinition {
  if (cachedDefinition && protoFile === kmsProtoPath()) return cachedDefinition;
  if (!existsSync(protoFile)) {
    throw new SecurityError(`KMS proto ${protoFile} is missing; ship src/security/kms-v2.proto (or copy it next to dist/security/kms.js)`);
  }
  const pkg = protoLoader.loadSync(protoFile, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const service = pkg[SERVICE_NAME];
  if (!isServiceDefinition(service)) throw new SecurityError(`${protoFile} does not define service ${SERVICE_NAME} with Status, Encrypt and Decrypt`);
  if (protoFile === kmsProtoPath()) cachedDefinition = service;
  return service;
}

export interface KmsServerOptions {
  /** Absolute socket path, normally kmsPaths(layout).socket. */
  socketPath: string;
  store: KekStore;
  logger?: SecurityLogger;
  now?: () => Date;
}

export interface KmsServer {
  readonly socketPath: string;
  /** The endpoint to put in EncryptionConfiguration. */
  readonly endpoint: string;
  /** Last Encrypt this plugin served: shows which KEK the apiserver writes with. */
  lastEncrypt(): { keyId: string; at: Date } | undefined;
  /**
   * Resolves once the apiserver has wrapped a DEK under keyId, i.e. it noticed the
   * rotation (it polls Status about once a minute). Re-encrypt only after this.
   */
  waitForKeyAdoption(keyId: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function kmsEndpoint(socketPath: string): string {
  return `unix://${socketPath}`;
}

function assertSocketPath(socketPath: string): void {
  if (!path.isAbsolute(socketPath)) throw new KmsSocketError(socketPath, 'must be an absolute path');
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_UNIX_SOCKET_PATH_BYTES) {
    throw new KmsSocketError(socketPath, `is ${bytes} bytes; unix sockets allow ${MAX_UNIX_SOCKET_PATH_BYTES}. Use a shorter K8S_ROOT / SNAP_COMMON`);
  }
}

/** Removes a stale socket; refuses to take over one that something still serves. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  try {
    const info = await stat(socketPath);
    if (!info.isSocket()) throw new KmsSocketError(socketPath, 'exists and is not a socket; remove it by hand');
  } catch (error) {
    if (error instanceof KmsSocketError) throw error;
    return; // does not exist
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(socketPath);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new KmsSocketError(socketPath, 'is served by another process; stop the other k8sd first');
  await rm(socketPath, { force: true });
}

function grpcError(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof UnknownKeyIdError) return { code: grpc.status.NOT_FOUND, details: error.message };
  if (error instanceof CiphertextError) return { code: grpc.status.INVALID_ARGUMENT, details: error.message };
  return { code: grpc.status.INTERNAL, details: `k8sd KMS plugin error: ${error instanceof Error ? error.message : String(error)}` };
}

/** Starts the plugin. Start it before kube-apiserver: the apiserver refuses to serve without it. */
export async function startKmsServer(options: KmsServerOptions): Promise<KmsServer> {
  const { socketPath, store, logger } = options;
  const now = options.now ?? (() => new Date());
  assertSocketPath(socketPath);
  await ensureSecretDir(path.dirname(socketPath));
  await clearStaleSocket(socketPath);

  let last: { keyId: string; at: Date } | undefined;
  const adoptionWaiters = new Set<{ keyId: string; resolve: () => void }>();

  const status: grpc.handleUnaryCall<object, StatusResponseMessage> = (_call, callback) => {
    // Another writer (k8sd ring sync) may have replaced the ring file since the last poll.
    store.reloadIfChanged().then(
      () => callback(null, { version: KMS_API_VERSION, healthz: 'ok', key_id: store.currentKeyId }),
      (error: unknown) => {
        logger?.error('KMS Status: KEK ring unusable', { error: error instanceof Error ? error.message : String(error) });
        // Report unhealthy instead of failing the call, so the apiserver healthz shows why.
        callback(null, { version: KMS_API_VERSION, healthz: `KEK ring unusable: ${error instanceof Error ? error.message : String(error)}`, key_id: store.currentKeyId });
      },
    );
  };

  const encrypt: grpc.handleUnaryCall<EncryptRequestMessage, EncryptResponseMessage> = (call, callback) => {
    store.wrap(call.request.plaintext).then(
      (wrapped) => {
        last = { keyId: wrapped.keyId, at: now() };
        for (const waiter of adoptionWaiters) if (waiter.keyId === wrapped.keyId) waiter.resolve();
        logger?.info('KMS Encrypt', { uid: call.request.uid, keyId: wrapped.keyId });
        callback(null, { ciphertext: wrapped.ciphertext, key_id: wrapped.keyId, annotations: {} });
      },
      (error: unknown) => {
        logger?.warn('KMS Encrypt failed', { uid: call.request.uid, error: error instanceof Error ? error.message : String(error) });
        callback(grpcError(error));
      },
    );
  };

  const decrypt: grpc.handleUnaryCall<DecryptRequestMessage, DecryptResponseMessage> = (call, callback) => {
    const { ciphertext, key_id: keyId, uid } = call.request;
    const unwrap = async (): Promise<Buffer> => {
      // A key_id we do not hold may have arrived with a ring sync; look once more.
      if (!store.has(keyId)) await store.reloadIfChanged();
      return store.unwrap(ciphertext, keyId);
    };
    unwrap().then(
      (plaintext) => callback(null, { plaintext }),
      (error: unknown) => {
        logger?.warn('KMS Decrypt failed', { uid, keyId, error: error instanceof Error ? error.message : String(error) });
        callback(grpcError(error));
      },
    );
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(kmsServiceDefinition(), { Status: status, Encrypt: encrypt, Decrypt: decrypt });
  const endpoint = kmsEndpoint(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(endpoint, grpc.ServerCredentials.createInsecure(), (error) => {
      if (error) reject(new KmsSocketError(socketPath, `cannot listen: ${error.message}`));
      else resolve();
    });
  });
  // The socket directory is 0700 already; the socket itself is for root only too.
  await chmod(socketPath, 0o600);
  logger?.info('KMS v2 plugin listening', { socket: socketPath, keyId: store.currentKeyId });

  return {
    socketPath,
    endpoint,
    lastEncrypt: () => (last ? { ...last } : undefined),
    waitForKeyAdoption(keyId: string, timeoutMs = 180_000): Promise<void> {
      if (last?.keyId === keyId) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const waiter = {
          keyId,
          resolve: () => { clearTimeout(timer); adoptionWaiters.delete(waiter); resolve(); },
        };
        const timer = setTimeout(() => {
          adoptionWaiters.delete(waiter);
          reject(new SecurityError(
            `kube-apiserver has not wrapped a DEK under ${keyId} within ${Math.round(timeoutMs / 1000)}s; ` +
              'check that it runs with --encryption-provider-config pointing at this plugin and that /healthz/kms-providers is ok',
          ));
        }, timeoutMs);
        adoptionWaiters.add(waiter);
      });
    },
    async close(): Promise<void> {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 5_000);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
      await rm(socketPath, { force: true });
    },
  };
}

export interface KmsClient {
  status(): Promise<KmsStatus>;
  encrypt(plaintext: Buffer, uid?: string): Promise<KmsEncryptResult>;
  decrypt(input: KmsDecryptInput): Promise<Buffer>;
  close(): void;
}

/** A gRPC client for the plugin, as the apiserver uses it; k8sd uses it for self-checks. */
export function createKmsClient(socketPath: string, options: { deadlineMs?: number; protoFile?: string } = {}): KmsClient {
  const definition = kmsServiceDefinition(options.protoFile);
  const client = new grpc.Client(kmsEndpoint(socketPath), grpc.credentials.createInsecure());
  const deadlineMs = options.deadlineMs ?? 3_000;

  function unary<Response>(name: 'Status' | 'Encrypt' | 'Decrypt', request: object): Promise<Response> {
    const method = definition[name];
    return new Promise<Response>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (error: grpc.ServiceError | null, value?: object) => {
          if (error) reject(new KmsCallError(name, error.details || error.message, error.code));
          else if (value === undefined) reject(new KmsCallError(name, 'empty response'));
          else resolve(value as Response);
        },
      );
    });
  }

  return {
    async status(): Promise<KmsStatus> {
      const response = await unary<StatusResponseMessage>('Status', {});
      return { version: response.version, healthz: response.healthz, keyId: response.key_id };
    },
    async encrypt(plaintext: Buffer, uid = ''): Promise<KmsEncryptResult> {
      const response = await unary<EncryptResponseMessage>('Encrypt', { plaintext, uid });
      return { ciphertext: response.ciphertext, keyId: response.key_id, annotations: response.annotations };
    },
    async decrypt(input: KmsDecryptInput): Promise<Buffer> {
      const response = await unary<DecryptResponseMessage>('Decrypt', {
        ciphertext: input.ciphertext,
        key_id: input.keyId,
        uid: input.uid ?? '',
        annotations: input.annotations ?? {},
      });
      return response.plaintext;
    },
    close(): void {
      client.close();
    },
  };
}
