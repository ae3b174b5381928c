// The `etcd` relation (interface etcd, limit 1): an external etcd as the cluster's datastore.
// Canonical's etcd charm publishes, in each of its units' bags:
//   connection_string  comma-separated client URLs (https://10.0.0.5:2379,…)
//   client_ca, client_cert, client_key   PEM: the CA of etcd's server certificates, and a client
//                                        certificate and key etcd accepts
// The leader bootstraps with datastore-type external from these; the choice is fixed afterwards.
import type { Config, Relation } from '../../runtime/src/model.js';
import type { Reconciliation } from '../../runtime/src/reconcile.js';
import { OptionValueError } from '../../k8s-common/src/options.js';

export const ETCD_ENDPOINT = 'etcd';
export const ETCD_KEYS = {
  servers: 'connection_string',
  ca: 'client_ca',
  cert: 'client_cert',
  key: 'client_key',
} as const;

/** What bootstrap-datastore asks for: '' follows the etcd integration (external when related). */
export type DatastoreChoice = 'default' | 'managed-etcd' | 'etcd';

/** The datastore the cluster was bootstrapped with, recorded in the peer app bag. */
export type DatastoreKind = 'managed' | 'external';

export interface EtcdConnection {
  readonly servers: readonly string[];
  readonly caCrt: string;
  readonly clientCrt: string;
  readonly clientKey: string;
}

export function datastoreChoice(config: Config): DatastoreChoice {
  const value = config.string('bootstrap-datastore');
  if (value === '') return 'default';
  if (value === 'managed-etcd' || value === 'etcd') return value;
  if (value === 'external') {
    throw new OptionValueError('bootstrap-datastore', "use 'etcd' for an external etcd (through the etcd integration), or 'managed-etcd'");
  }
  throw new OptionValueError('bootstrap-datastore', `'${value}' is not '' (managed etcd, or the related etcd), 'managed-etcd' or 'etcd'`);
}

/** The relation data is present but unusable: the message names the key. */
export class EtcdRelationError extends Error {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`etcd relation: ${key} ${problem}`);
    this.name = 'EtcdRelationError';
  }
}

function pem(key: string, text: string, kind: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  const value = text.trim();
  const label = kind === 'CERTIFICATE' ? /^-----BEGIN CERTIFICATE-----/ : /^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/;
  if (!label.test(value)) throw new EtcdRelationError(key, `is not a PEM ${kind.toLowerCase()}`);
  return `${value}\n`;
}

/** Parses one etcd unit's bag; undefined until all four keys are there. */
export function parseEtcdData(data: Readonly<Record<string, string | undefined>>): EtcdConnection | undefined {
  const raw = {
    servers: data[ETCD_KEYS.servers] ?? '',
    ca: data[ETCD_KEYS.ca] ?? '',
    cert: data[ETCD_KEYS.cert] ?? '',
    key: data[ETCD_KEYS.key] ?? '',
  };
  if (Object.values(raw).some((value) => value.trim() === '')) return undefined;
  const servers = raw.servers.split(',').map((url) => url.trim()).filter((url) => url !== '');
  for (const server of servers) {
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new EtcdRelationError(ETCD_KEYS.servers, `'${server}' is not a URL such as https://10.0.0.5:2379`);
    }
    if (url.protocol !== 'https:') throw new EtcdRelationError(ETCD_KEYS.servers, `'${server}' must use https:// (k8s uses client certificates)`);
  }
  return {
    servers,
    caCrt: pem(ETCD_KEYS.ca, raw.ca, 'CERTIFICATE'),
    clientCrt: pem(ETCD_KEYS.cert, raw.cert, 'CERTIFICATE'),
    clientKey: pem(ETCD_KEYS.key, raw.key, 'PRIVATE KEY'),
  };
}

/** The first etcd unit that has published complete data (every etcd unit publishes the same). */
export async function readEtcdConnection(relation: Relation): Promise<EtcdConnection | undefined> {
  for (const unit of [...relation.units].sort()) {
    const bag = await relation.unitBag(unit);
    const connection = parseEtcdData(Object.fromEntries(bag.entries()));
    if (connection) return connection;
  }
  return undefined;
}

export const ETCD_WAITING_MESSAGE = `Waiting for etcd to publish ${Object.values(ETCD_KEYS).join(', ')}`;

/**
 * Before bootstrap: the datastore to bootstrap with. undefined means managed etcd; an
 * EtcdConnection means external. Blocks when the option and the integration disagree, waits
 * while the etcd charm has not published its data.
 */
export async function datastoreForBootstrap(r: Reconciliation, choice: DatastoreChoice, relation: Relation | undefined): Promise<EtcdConnection | undefined> {
  if (choice === 'managed-etcd' && relation) {
    r.block("bootstrap-datastore is 'managed-etcd' but the etcd integration exists: remove the integration or set bootstrap-datastore to 'etcd'");
  }
  if (choice === 'etcd' && !relation) r.block("Missing etcd relation: bootstrap-datastore 'etcd' needs `juju integrate k8s:etcd etcd`");
  if (!relation) return undefined;
  let connection: EtcdConnection | undefined;
  try {
    connection = await readEtcdConnection(relation);
  } catch (error) {
    if (error instanceof EtcdRelationError) r.block(error.message);
    throw error;
  }
  if (!connection) r.wait(ETCD_WAITING_MESSAGE);
  return connection;
}

/** After bootstrap: the integration must match the datastore the cluster runs on. */
export function datastoreViolation(recorded: DatastoreKind, related: boolean): string | undefined {
  if (recorded === 'managed' && related) {
    return 'etcd integration added after bootstrap: this cluster runs managed etcd and cannot move to an external one; remove the etcd integration';
  }
  if (recorded === 'external' && !related) return 'Missing etcd relation: this cluster stores its data in the external etcd; restore the etcd integration';
  return undefined;
}

/** The bootstrap document's datastore keys (k8s' BootstrapConfig). */
export function externalDatastoreDocument(connection: EtcdConnection): Record<string, unknown> {
  return {
    'datastore-type': 'external',
    'datastore-servers': [...connection.servers],
    'datastore-ca-crt': connection.caCrt,
    'datastore-client-crt': connection.clientCrt,
    'datastore-client-key': connection.clientKey,
  };
}
