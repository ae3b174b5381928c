// Explicit command registry (fast start-up: oclif loads no manifest scan).
import Bootstrap from './bootstrap.js';
import CertsStatus from './certs-status.js';
import RefreshCerts from './refresh-certs.js';
import RotateCertsCa from './rotate-certs-ca.js';
import SecretsEncryption from './secrets-encryption.js';
import Config from './config.js';
import GetJoinToken from './get-join-token.js';
import JoinCluster from './join-cluster.js';
import ListJoinTokens from './list-join-tokens.js';
import RemoveNode from './remove-node.js';
import RevokeJoinToken from './revoke-join-token.js';
import Kubectl from './kubectl.js';
import Status from './status.js';
import Enable from './enable.js';
import Disable from './disable.js';
import SetCommand from './set.js';
import Get from './get.js';
import ListImages from './list-images.js';
import XCleanup from './x-cleanup.js';
import SnapshotCommand from './snapshot.js';
import Inspect from './inspect.js';
import Completion from './completion.js';

export const COMMANDS = {
  bootstrap: Bootstrap,
  'certs-status': CertsStatus,
  'refresh-certs': RefreshCerts,
  'rotate-certs-ca': RotateCertsCa,
  'secrets-encryption': SecretsEncryption,
  config: Config,
  'get-join-token': GetJoinToken,
  'join-cluster': JoinCluster,
  'list-join-tokens': ListJoinTokens,
  'remove-node': RemoveNode,
  'revoke-join-token': RevokeJoinToken,
  kubectl: Kubectl,
  status: Status,
  enable: Enable,
  disable: Disable,
  set: SetCommand,
  get: Get,
  'list-images': ListImages,
  'x-cleanup': XCleanup,
  snapshot: SnapshotCommand,
  inspect: Inspect,
  completion: Completion,
};
