// The Model: what a charm sees of Juju (its unit, config, relations and their bags,
// secrets, status, ports, network, stored state), built over a HookTools.
// Relation writes are staged and flushed by commit(), which dispatch calls once the
// handler has finished; Juju would discard them on a failed hook anyway.
import { ConfigError, HookToolError, RelationDataAccessError } from './errors.js';
import type {
  ConfigValue,
  ConfigValues,
  HookTools,
  LogLevel,
  NetworkInfo,
  Port,
  SecretAddOptions,
  SecretGetOptions,
  SettableStatus,
  StringMap,
} from './hooktools.js';
import type { JujuContext } from './juju-context.js';

export class Config {
  constructor(private readonly values: ConfigValues) {}

  has(option: string): boolean {
    return this.values[option] !== undefined;
  }

  raw(option: string): ConfigValue | undefined {
    return this.values[option];
  }

  string(option: string): string {
    const value = this.values[option];
    if (value === undefined) return '';
    if (typeof value !== 'string') throw new ConfigError(option, `must be a string, got ${JSON.stringify(value)}`);
    return value;
  }

  boolean(option: string, fallback = false): boolean {
    const value = this.values[option];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw new ConfigError(option, `must be true or false, got ${JSON.stringify(value)}`);
    return value;
  }

  int(option: string, fallback = 0): number {
    const value = this.values[option];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      throw new ConfigError(option, `must be an integer, got ${JSON.stringify(value)}`);
    }
    return value;
  }
}

/** One relation data bag. Only the local unit bag, and the local app bag on the leader, are writable. */
export class RelationBag {
  private readonly staged = new Map<string, string>();
  private readonly data: Record<string, string>;

  constructor(
    readonly relationId: string,
    readonly owner: string,
    readonly isApp: boolean,
    data: StringMap,
    /** Why writes are refused, or undefined when this bag is writable. */
    private readonly readOnlyReason: string | undefined,
  ) {
    this.data = { ...data };
  }

  get writable(): boolean {
    return this.readOnlyReason === undefined;
  }

  get(key: string): string | undefined {
    const staged = this.staged.get(key);
    if (staged !== undefined) return staged === '' ? undefined : staged;
    return this.data[key];
  }

  entries(): Array<[string, string]> {
    const merged = new Map<string, string>(Object.entries(this.data));
    for (const [key, value] of this.staged) {
      if (value === '') merged.delete(key);
      else merged.set(key, value);
    }
    return [...merged.entries()];
  }

  keys(): string[] {
    return this.entries().map(([key]) => key);
  }

  set(key: string, value: string): void {
    if (this.readOnlyReason !== undefined) {
      throw new RelationDataAccessError(
        `cannot write '${key}' to the ${this.isApp ? 'application' : 'unit'} bag of ${this.owner} on ${this.relationId}: ${this.readOnlyReason}`,
      );
    }
    if (this.get(key) === (value === '' ? undefined : value)) return;
    this.staged.set(key, value);
  }

  delete(key: string): void {
    if (this.get(key) === undefined) return;
    this.set(key, '');
  }

  /** The staged changes, '' meaning delete. */
  pendingChanges(): StringMap {
    return Object.fromEntries(this.staged);
  }

  markCommitted(): void {
    for (const [key, value] of this.staged) {
      if (value === '') delete this.data[key];
      else this.data[key] = value;
    }
    this.staged.clear();
  }
}

export class Relation {
  private readonly bags = new Map<string, Promise<RelationBag>>();

  constructor(
    private readonly model: Model,
    /** 'cluster:3' */
    readonly id: string,
    readonly endpoint: string,
    /** The remote application; the local one for a peer relation. */
    readonly app: string,
    /** Remote units in the relation, never the local unit. */
    readonly units: readonly string[],
  ) {}

  get isPeer(): boolean {
    return this.app === this.model.unit.app;
  }

  localUnitBag(): Promise<RelationBag> {
    return this.bag(this.model.unit.name, false);
  }

  /** Readable by the leader, and by every unit on a peer relation; writable by the leader only. */
  localAppBag(): Promise<RelationBag> {
    return this.bag(this.model.unit.app, true);
  }

  /** The remote application's bag (the shared app bag on a peer relation). */
  remoteAppBag(): Promise<RelationBag> {
    return this.bag(this.app, true);
  }

  unitBag(unit: string): Promise<RelationBag> {
    return this.bag(unit, false);
  }

  /** The bags already read, for commit. */
  async loadedBags(): Promise<RelationBag[]> {
    return Promise.all(this.bags.values());
  }

  private bag(owner: string, isApp: boolean): Promise<RelationBag> {
    const key = `${isApp ? 'app' : 'unit'}:${owner}`;
    let bag = this.bags.get(key);
    if (!bag) {
      bag = this.loadBag(owner, isApp);
      this.bags.set(key, bag);
    }
    return bag;
  }

  private async loadBag(owner: string, isApp: boolean): Promise<RelationBag> {
    const local = isApp ? owner === this.model.unit.app : owner === this.model.unit.name;
    let readOnlyReason: string | undefined;
    if (!local) readOnlyReason = 'a unit writes only its own unit bag and, as leader, its own application bag';
    else if (isApp && !(await this.model.isLeader())) {
      if (!this.isPeer) {
        throw new RelationDataAccessError(
          `${this.model.unit.name} is not the leader: only the leader can read or write its own application data on ${this.id}`,
        );
      }
      readOnlyReason = 'only the leader writes application data';
    }
    const data = await this.model.tools.relationGet(this.id, { owner, app: isApp });
    return new RelationBag(this.id, owner, isApp, data, readOnlyReason);
  }
}

export class Secrets {
  constructor(private readonly tools: HookTools) {}

  add(content: StringMap, options: SecretAddOptions = {}): Promise<string> {
    return this.tools.secretAdd(content, options);
  }

  get(id: string, options: SecretGetOptions = {}): Promise<StringMap> {
    return this.tools.secretGet(id, options);
  }

  set(id: string, content: StringMap): Promise<void> {
    return this.tools.secretSet(id, content);
  }

  grant(id: string, relation: Relation, unit?: string): Promise<void> {
    return this.tools.secretGrant(id, relation.id, unit);
  }

  revoke(id: string, relation: Relation, unit?: string): Promise<void> {
    return this.tools.secretRevoke(id, relation.id, unit);
  }

  remove(id: string, revision?: number): Promise<void> {
    return this.tools.secretRemove(id, revision);
  }
}

/** Unit-local state kept by the Juju agent across hooks. */
export class StoredState {
  private cache: Promise<Record<string, string>> | undefined;

  constructor(private readonly tools: HookTools) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.load())[key];
  }

  async set(key: string, value: string): Promise<void> {
    const current = await this.load();
    if (current[key] === value) return;
    await this.tools.stateSet({ [key]: value });
    current[key] = value;
  }

  async delete(key: string): Promise<void> {
    const current = await this.load();
    if (current[key] === undefined) return;
    await this.tools.stateDelete(key);
    delete current[key];
  }

  private load(): Promise<Record<string, string>> {
    this.cache ??= this.tools.stateGet().then((values) => ({ ...values }));
    return this.cache;
  }
}

export interface UnitRef {
  readonly name: string;
  readonly app: string;
  readonly number: number;
}

export class Model {
  readonly unit: UnitRef;
  readonly secrets: Secrets;
  readonly state: StoredState;
  private leader: Promise<boolean> | undefined;
  private configCache: Promise<Config> | undefined;
  private readonly relationCache = new Map<string, Promise<Relation[]>>();

  constructor(
    readonly tools: HookTools,
    readonly context: JujuContext,
  ) {
    this.unit = { name: context.unitName, app: context.appName, number: context.unitNumber };
    this.secrets = new Secrets(tools);
    this.state = new StoredState(tools);
  }

  isLeader(): Promise<boolean> {
    this.leader ??= this.tools.isLeader();
    return this.leader;
  }

  config(): Promise<Config> {
    this.configCache ??= this.tools.configGet().then((values) => new Config(values));
    return this.configCache;
  }

  relations(endpoint: string): Promise<Relation[]> {
    let relations = this.relationCache.get(endpoint);
    if (!relations) {
      relations = this.loadRelations(endpoint);
      this.relationCache.set(endpoint, relations);
    }
    return relations;
  }

  /** The first relation on an endpoint (peer and limit-1 endpoints have at most one). */
  async relation(endpoint: string): Promise<Relation | undefined> {
    return (await this.relations(endpoint))[0];
  }

  network(binding: string, relation?: Relation): Promise<NetworkInfo> {
    return this.tools.networkGet(binding, relation?.id);
  }

  setUnitStatus(status: SettableStatus, message: string): Promise<void> {
    return this.tools.statusSet(status, message, false);
  }

  setAppStatus(status: SettableStatus, message: string): Promise<void> {
    return this.tools.statusSet(status, message, true);
  }

  setWorkloadVersion(version: string): Promise<void> {
    return this.tools.applicationVersionSet(version);
  }

  openPort(port: Port): Promise<void> {
    return this.tools.openPort(port);
  }

  closePort(port: Port): Promise<void> {
    return this.tools.closePort(port);
  }

  /**
   * The path of a file resource, or undefined when none is available (resource-get fails when
   * nothing was uploaded and the charm has no default).
   */
  async resourcePath(name: string): Promise<string | undefined> {
    try {
      return await this.tools.resourceGet(name);
    } catch (error) {
      if (error instanceof HookToolError) return undefined;
      throw error;
    }
  }

  log(level: LogLevel, message: string): Promise<void> {
    return this.tools.jujuLog(level, message);
  }

  /** Flushes staged relation writes with one relation-set per changed bag. */
  async commit(): Promise<void> {
    for (const relations of this.relationCache.values()) {
      for (const relation of await relations) {
        for (const bag of await relation.loadedBags()) {
          const changes = bag.pendingChanges();
          if (Object.keys(changes).length === 0) continue;
          await this.tools.relationSet(relation.id, changes, bag.isApp);
          bag.markCommitted();
        }
      }
    }
  }

  private async loadRelations(endpoint: string): Promise<Relation[]> {
    const ids = await this.tools.relationIds(endpoint);
    return Promise.all(
      ids.map(async (id) => {
        const [app, units] = await Promise.all([this.tools.relationRemoteApp(id), this.tools.relationList(id)]);
        return new Relation(this, id, endpoint, app, units.filter((unit) => unit !== this.unit.name));
      }),
    );
  }
}
