// The slice of a winston Logger that src/security uses, so k8sd can pass its own.
// Callers log ids, counts and paths only — never key material, plaintext or ciphertext.
export interface SecurityLogger {
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}
