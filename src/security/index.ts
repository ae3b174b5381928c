// Public surface of src/security: secure defaults for kube-apiserver (encryption at
// rest through the k8sd KMS v2 plugin, audit logging, admission control), each as
// pure generators of files and flags, plus the plugin server and re-encryption.
export * from './errors.js';
export * from './files.js';
export type { SecurityLogger } from './logger.js';
export * from './kek-ring.js';
export * from './key-sets.js';
export {
  KMS_API_VERSION,
  KMS_PROVIDER_NAME,
  createKmsClient,
  kmsEndpoint,
  kmsProtoPath,
  kmsServiceDefinition,
  startKmsServer,
  type KmsClient,
  type KmsDecryptInput,
  type KmsEncryptResult,
  type KmsServer,
  type KmsServerOptions,
  type KmsStatus,
} from './kms.js';
export * from './reencrypt.js';
export {
  DEFAULT_ENCRYPTION_SETTINGS,
  aesgcmEncryptionConfigYaml,
  aesgcmKeySet,
  aesgcmKeysOf,
  dropAesgcmKey,
  encryptionArgs,
  encryptionConfigFor,
  encryptionConfigYaml,
  encryptionPaths,
  files as encryptionFiles,
  generateAesgcmKey,
  needsKmsPlugin,
  resolveEncryptionSettings,
  rotateAesgcmKeys,
  secretsEncryptionStatus,
  type AesgcmKey,
  type EncryptionPaths,
  type EncryptionProvider,
  type EncryptionSettings,
  type EncryptionStage,
  type ReadOnlyProvider,
  type ReencryptRecord,
  type ReencryptState,
  type SecretsEncryptionStatus,
  type SecretsEncryptionStatusInput,
} from './encryption.js';
export {
  DEFAULT_AUDIT_SETTINGS,
  auditArgs,
  auditPaths,
  auditPolicy,
  auditPolicyYaml,
  files as auditFiles,
  type AuditDetail,
  type AuditLevel,
  type AuditPaths,
  type AuditPolicy,
  type AuditPolicyRule,
  type AuditSettings,
} from './audit.js';
export {
  DEFAULT_ADMISSION_SETTINGS,
  DEFAULT_EVENT_RATE_LIMIT,
  DEFAULT_POD_SECURITY,
  KNOWN_ADMISSION_PLUGINS,
  admissionArgs,
  admissionConfiguration,
  admissionConfigurationYaml,
  admissionPaths,
  enabledAdmissionPlugins,
  eventRateLimitConfiguration,
  files as admissionFiles,
  podSecurityConfiguration,
  resolveAdmissionSettings,
  type AdmissionSettings,
  type AdmissionSettingsInput,
  type EventRateLimitSettings,
  type PodSecurityLevel,
  type PodSecuritySettings,
} from './admission.js';
export {
  SecurityManager,
  readAesgcmKeys,
  securitySettingsFrom,
  type ClusterRotationPlan,
  type ClusterSecurityConfig,
  type EncryptionKeys,
  type EncryptionKeySummary,
  type KeyChange,
  type SecurityManagerOptions,
  type SecuritySettings,
} from './manager.js';
