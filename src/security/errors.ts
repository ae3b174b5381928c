// Typed errors for src/security. Every message says what to do next and never
// carries key material, plaintext or ciphertext.

export class SecurityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A settings value is invalid; `key` names the offending setting (dotted path). */
export class SecuritySettingsError extends SecurityError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`${key}: ${message}`);
    this.key = key;
  }
}

/** The KEK ring file is missing, unreadable, malformed or inconsistent. */
export class KekRingError extends SecurityError {
  readonly file: string;
  constructor(file: string, message: string) {
    super(`KEK ring ${file}: ${message}`);
    this.file = file;
  }
}

/** Two nodes' encryption keys (KEK rings, aesgcm keys) disagree, e.g. two control-plane nodes rotated at the same time. */
export class EncryptionKeyConflictError extends SecurityError {}

/** Decrypt was asked for a key_id this node does not hold. */
export class UnknownKeyIdError extends SecurityError {
  readonly keyId: string;
  constructor(keyId: string) {
    super(
      `KMS key_id "${keyId}" is not in this node's KEK ring. ` +
        'Sync the KEK ring from another control-plane node (k8sd does this on join); ' +
        'if the KEK was retired, restore it from a backup of the ring before retrying.',
    );
    this.keyId = keyId;
  }
}

/** A wrapped DEK failed authentication or is malformed. */
export class CiphertextError extends SecurityError {}

/** The plugin socket cannot be served. */
export class KmsSocketError extends SecurityError {
  readonly socketPath: string;
  constructor(socketPath: string, message: string) {
    super(`KMS socket ${socketPath}: ${message}`);
    this.socketPath = socketPath;
  }
}

/** A KMS client call failed (gRPC status code kept for callers). */
export class KmsCallError extends SecurityError {
  readonly grpcCode: number | undefined;
  constructor(method: string, message: string, grpcCode?: number) {
    super(`KMS ${method} failed: ${message}`);
    this.grpcCode = grpcCode;
  }
}

/** Re-encrypting Secrets stopped early. */
export class ReencryptError extends SecurityError {}
