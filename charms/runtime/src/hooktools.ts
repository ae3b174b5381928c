// The hook tools a charm may call, as one interface with two implementations:
// ExecaHookTools (the real tools, spawned with --format=json) and
// MemoryHookTools (driven by a declared State, for state-in → state-out tests).

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export type ConfigValue = string | number | boolean;
export type ConfigValues = Readonly<Record<string, ConfigValue>>;

/** A relation data bag or a secret's content: string keys, string values. */
export type StringMap = Readonly<Record<string, string>>;

export type SettableStatus = 'maintenance' | 'blocked' | 'waiting' | 'active';
export type LogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';

export interface Port {
  readonly protocol: 'tcp' | 'udp' | 'icmp';
  /** Absent for icmp. */
  readonly port?: number;
  /** Last port of a range, inclusive. */
  readonly toPort?: number;
}

export interface NetworkAddress {
  readonly value: string;
  readonly cidr: string;
  readonly hostname?: string;
}

export interface BindAddress {
  readonly interfaceName: string;
  readonly macAddress?: string;
  readonly addresses: readonly NetworkAddress[];
}

export interface NetworkInfo {
  readonly bindAddresses: readonly BindAddress[];
  readonly ingressAddresses: readonly string[];
  readonly egressSubnets: readonly string[];
}

export interface SecretAddOptions {
  readonly label?: string;
  readonly description?: string;
  /** Juju's default is 'application'. Only the leader may add application-owned secrets. */
  readonly owner?: 'application' | 'unit';
}

export interface SecretGetOptions {
  readonly label?: string;
  /** Move the tracked revision to the latest one and return it. */
  readonly refresh?: boolean;
  /** Return the latest revision without tracking it. */
  readonly peek?: boolean;
}

export interface RelationTarget {
  /** A unit name ('k8s/0') or, with app, an application name. */
  readonly owner: string;
  readonly app: boolean;
}

export interface HookTools {
  configGet(): Promise<ConfigValues>;

  relationIds(endpoint: string): Promise<string[]>;
  /** Remote units currently in the relation (never the local unit). */
  relationList(relationId: string): Promise<string[]>;
  /** The remote application of a relation (the local one for a peer relation). */
  relationRemoteApp(relationId: string): Promise<string>;
  relationGet(relationId: string, target: RelationTarget): Promise<StringMap>;
  /** Writes keys into the local unit bag, or the local app bag with app=true. An empty value deletes a key. */
  relationSet(relationId: string, data: StringMap, app: boolean): Promise<void>;

  isLeader(): Promise<boolean>;
  statusSet(status: SettableStatus, message: string, application: boolean): Promise<void>;
  applicationVersionSet(version: string): Promise<void>;

  actionGet(): Promise<Record<string, JsonValue>>;
  /** Keys are dotted paths ('a.b'), values strings. */
  actionSet(results: StringMap): Promise<void>;
  actionFail(message: string): Promise<void>;
  actionLog(message: string): Promise<void>;

  jujuLog(level: LogLevel, message: string): Promise<void>;

  openPort(port: Port): Promise<void>;
  closePort(port: Port): Promise<void>;
  networkGet(binding: string, relationId?: string): Promise<NetworkInfo>;

  /** Returns the new secret's URI ('secret:…'). */
  secretAdd(content: StringMap, options?: SecretAddOptions): Promise<string>;
  secretGet(id: string, options?: SecretGetOptions): Promise<StringMap>;
  /** Creates a new revision. */
  secretSet(id: string, content: StringMap): Promise<void>;
  secretGrant(id: string, relationId: string, unit?: string): Promise<void>;
  secretRevoke(id: string, relationId: string, unit?: string): Promise<void>;
  /** Removes one revision, or the whole secret when revision is absent. */
  secretRemove(id: string, revision?: number): Promise<void>;

  /** Unit-local charm state kept by the Juju agent (state-get / state-set / state-delete). */
  stateGet(): Promise<StringMap>;
  stateSet(data: StringMap): Promise<void>;
  stateDelete(key: string): Promise<void>;

  /** `resource-get <name>`: the path of the resource's file. Throws a HookToolError when none is available. */
  resourceGet(name: string): Promise<string>;
}

/** Juju's rule for secret content keys. */
export const SECRET_KEY_PATTERN = /^[a-z](-?[a-z0-9]){2,}$/;
/** Juju's rule for action-set keys (each dotted segment). */
export const ACTION_RESULT_KEY_PATTERN = /^[a-z0-9](-?[a-z0-9])*$/;
export const RESERVED_ACTION_RESULT_KEYS: ReadonlySet<string> = new Set(['stdout', 'stderr', 'stdout-encoding', 'stderr-encoding']);

export function formatPort(port: Port): string {
  if (port.protocol === 'icmp') return 'icmp';
  if (port.port === undefined) throw new RangeError(`a ${port.protocol} port needs a port number`);
  const range = port.toPort !== undefined && port.toPort !== port.port ? `${port.port}-${port.toPort}` : `${port.port}`;
  return `${range}/${port.protocol}`;
}
