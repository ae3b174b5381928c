// k8sd's API contract: every endpoint's path, request schema and reply type, and the progress
// events of streaming endpoints. The daemon's routes parse with these; the client is typed by them.
export * from './endpoint.js';
export * from './progress.js';
export * as local from './local.js';
export * as peer from './peer.js';
export type { NodeInfo, ClusterStatus, DatastoreMember, DatastoreReport, FeatureStatus, BootstrapResult } from './node.js';
export type { IssuedToken, TokenInfo, JoinResult, RemoveResult } from './membership.js';
export type { CertEntry, RefreshResult, CaRotationResult } from './certs.js';
export type { ClusterKeyStatus, EncryptionStatus, NodeKeyStatus, KeyRotationResult, ReencryptResult } from './secrets.js';
export type { SnapshotInfo, SavedSnapshot, RestoreResult } from './snapshots.js';
