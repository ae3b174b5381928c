// The relation data both charms exchange on `cluster` (peers) and `k8s-cluster` ↔ `cluster`.
//
// Joining unit's bag:   node-name=<hostname>        written as soon as the unit has a relation
//                       joined=<cluster-name>       after a successful join
//                       join-failure={"attempt":n,"error":"…"}  after a failed one
// Leader's app bag:     cluster-name=<name>
//                       join-secret.<unit>=<secret id>   while the unit's token is outstanding
//                       node.<unit>=<node name>          every node the leader has let in
//                       bootstrap-config={…}             (peers only) the immutable options as bootstrapped
//                       datastore=managed|external       (peers only) the datastore the cluster was bootstrapped with
// Token secret content: token=<k8s join token>, attempt=<n>; granted to the joining unit only.

export const UNIT_NODE_NAME = 'node-name';
export const UNIT_JOINED = 'joined';
/** The address the unit joins with (its cluster binding): the leader names it in the token (get-join-token --address). */
export const UNIT_NODE_ADDRESS = 'node-address';
export const UNIT_JOIN_FAILURE = 'join-failure';

export const APP_CLUSTER_NAME = 'cluster-name';
export const APP_BOOTSTRAP_CONFIG = 'bootstrap-config';
export const APP_FEATURES = 'features';
export const APP_DATASTORE = 'datastore';

const JOIN_SECRET_PREFIX = 'join-secret.';
const NODE_PREFIX = 'node.';

export function joinSecretKey(unit: string): string {
  return `${JOIN_SECRET_PREFIX}${unit}`;
}

export function nodeKey(unit: string): string {
  return `${NODE_PREFIX}${unit}`;
}

/** Units the leader has recorded in its app bag (node.<unit> keys). */
export function recordedUnits(keys: readonly string[]): string[] {
  return keys.filter((key) => key.startsWith(NODE_PREFIX)).map((key) => key.slice(NODE_PREFIX.length));
}

export interface TokenContent {
  readonly token: string;
  readonly attempt: number;
}

export function tokenSecretContent(token: string, attempt: number): Record<string, string> {
  return { token, attempt: String(attempt) };
}

export function parseTokenContent(content: Readonly<Record<string, string>>): TokenContent | undefined {
  const token = content.token;
  const attempt = Number(content.attempt ?? '1');
  if (!token || !Number.isInteger(attempt) || attempt < 1) return undefined;
  return { token, attempt };
}

export interface JoinFailure {
  readonly attempt: number;
  readonly error: string;
}

export function parseJoinFailure(text: string | undefined): JoinFailure | undefined {
  if (!text) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && 'attempt' in value && typeof value.attempt === 'number') {
      const error = 'error' in value && typeof value.error === 'string' ? value.error : '';
      return { attempt: value.attempt, error };
    }
  } catch {
    // A malformed report is treated as no report.
  }
  return undefined;
}

export function formatJoinFailure(failure: JoinFailure): string {
  return JSON.stringify({ attempt: failure.attempt, error: failure.error.slice(0, 500) });
}

/** The cluster name shared by every unit: derived from the application and model, no secrets in it. */
export function clusterNameFor(app: string, modelUuid: string): string {
  const model = modelUuid.replace(/-/g, '').slice(0, 12) || 'model';
  return `${app}-${model}`;
}
