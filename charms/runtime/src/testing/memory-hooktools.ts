// HookTools over an in-memory copy of a State. It applies Juju's access rules the way
// the real tools do, by failing the call: only the leader writes (or, off a peer relation,
// reads) its own application bag; a unit writes only its own unit bag; a secret owned
// elsewhere is readable only once granted; only the owner changes, grants or removes a secret.
import { HookToolError } from '../errors.js';
import {
  SECRET_KEY_PATTERN,
  formatPort,
  type ConfigValue,
  type ConfigValues,
  type HookTools,
  type JsonValue,
  type LogLevel,
  type NetworkInfo,
  type Port,
  type RelationTarget,
  type SecretAddOptions,
  type SecretGetOptions,
  type SettableStatus,
  type StringMap,
} from '../hooktools.js';
import type { CharmMeta } from '../metadata.js';
import { defaultNetwork, type Bag, type RelationState, type SecretState, type State, type StatusState } from './state.js';

interface WorkingRelation {
  readonly id: number;
  readonly endpoint: string;
  readonly remoteApp: string;
  readonly peer: boolean;
  localAppData: Record<string, string>;
  localUnitData: Record<string, string>;
  remoteAppData: Record<string, string>;
  readonly remoteUnitsData: Map<number, Record<string, string>>;
}

interface WorkingSecret {
  readonly id: string;
  readonly owner: 'app' | 'unit' | undefined;
  readonly revisions: Map<number, Record<string, string>>;
  trackedRevision: number | undefined;
  label: string | undefined;
  description: string | undefined;
  readonly grantedTo: 'unit' | 'app' | undefined;
  readonly grants: Map<number, Set<string>>;
}

export interface MemoryRunInfo {
  readonly unitName: string;
  readonly appName: string;
  /** Relation events: the relation number, and the remote unit that is leaving (relation-departed). */
  readonly eventRelationId?: number;
  readonly departedUnit?: string;
  readonly brokenRelation?: boolean;
  readonly action?: { readonly name: string; readonly params: Readonly<Record<string, JsonValue>> };
}

export interface LogRecord {
  readonly level: LogLevel;
  readonly message: string;
}

let secretCounter = 0;

function newSecretId(): string {
  secretCounter += 1;
  return `secret:cs${String(secretCounter).padStart(18, '0')}`;
}

function copyBag(bag: Bag | undefined): Record<string, string> {
  return { ...(bag ?? {}) };
}

export class MemoryHookTools implements HookTools {
  readonly unitStatusHistory: StatusState[] = [];
  readonly appStatusHistory: StatusState[] = [];
  readonly logs: LogRecord[] = [];
  readonly actionLogs: string[] = [];
  actionResults: Record<string, string> = {};
  actionFailure: string | undefined;
  /** Every call, as 'tool arg…', for debugging a test. Secret content never appears. */
  readonly calls: string[] = [];

  private leader: boolean;
  private readonly config: Record<string, ConfigValue>;
  private readonly relations: WorkingRelation[];
  private readonly secrets: WorkingSecret[];
  private readonly networks: Readonly<Record<string, NetworkInfo>>;
  private openedPorts: Port[];
  private unitStatus: StatusState;
  private appStatus: StatusState;
  private workloadVersion: string;
  private readonly storedState: Record<string, string>;

  constructor(
    private readonly meta: CharmMeta,
    private readonly initial: State,
    private readonly run: MemoryRunInfo,
  ) {
    this.leader = initial.leader;
    this.config = {};
    for (const [option, spec] of Object.entries(meta.config)) {
      if (spec.default !== undefined) this.config[option] = spec.default;
    }
    Object.assign(this.config, initial.config);
    this.relations = initial.relations.map((relation) => this.workingRelation(relation));
    this.secrets = initial.secrets.map((secret) => ({
      id: secret.id,
      owner: secret.owner,
      revisions: new Map(Object.entries(secret.revisions).map(([revision, content]) => [Number(revision), copyBag(content)])),
      trackedRevision: secret.trackedRevision,
      label: secret.label,
      description: secret.description,
      grantedTo: secret.grantedTo,
      grants: new Map(Object.entries(secret.grants ?? {}).map(([relation, grantees]) => [Number(relation), new Set(grantees)])),
    }));
    this.networks = initial.networks;
    this.openedPorts = [...initial.openedPorts];
    this.unitStatus = initial.unitStatus;
    this.appStatus = initial.appStatus;
    this.workloadVersion = initial.workloadVersion;
    this.storedState = { ...initial.storedState };
  }

  /** The State as it stands now. */
  snapshot(): State {
    return {
      ...this.initial,
      leader: this.leader,
      config: { ...this.initial.config },
      relations: this.relations.map((relation) => this.relationState(relation)),
      secrets: this.secrets.map((secret) => this.secretState(secret)),
      openedPorts: [...this.openedPorts],
      unitStatus: this.unitStatus,
      appStatus: this.appStatus,
      workloadVersion: this.workloadVersion,
      storedState: { ...this.storedState },
    };
  }

  async configGet(): Promise<ConfigValues> {
    this.record('config-get');
    return { ...this.config };
  }

  async relationIds(endpoint: string): Promise<string[]> {
    this.record('relation-ids', endpoint);
    return this.relations.filter((relation) => relation.endpoint === endpoint).map((relation) => `${relation.endpoint}:${relation.id}`);
  }

  async relationList(relationId: string): Promise<string[]> {
    this.record('relation-list', '-r', relationId);
    const relation = this.relation('relation-list', relationId);
    if (this.run.brokenRelation && this.run.eventRelationId === relation.id) return [];
    return [...relation.remoteUnitsData.keys()]
      .sort((a, b) => a - b)
      .map((number) => `${relation.remoteApp}/${number}`)
      .filter((unit) => !(this.run.eventRelationId === relation.id && unit === this.run.departedUnit));
  }

  async relationRemoteApp(relationId: string): Promise<string> {
    this.record('relation-list', '-r', relationId, '--app');
    return this.relation('relation-list', relationId).remoteApp;
  }

  async relationGet(relationId: string, target: RelationTarget): Promise<StringMap> {
    this.record('relation-get', '-r', relationId, ...(target.app ? ['--app'] : []), '-', target.owner);
    const relation = this.relation('relation-get', relationId);
    if (target.app) {
      if (target.owner === this.run.appName) {
        if (!relation.peer && !this.leader) {
          this.refuse('relation-get', 'permission denied: only the leader can read its own application data on a non-peer relation');
        }
        return { ...relation.localAppData };
      }
      if (target.owner === relation.remoteApp) return { ...relation.remoteAppData };
      this.refuse('relation-get', `application '${target.owner}' is not in relation ${relationId}`);
    }
    if (target.owner === this.run.unitName) return { ...relation.localUnitData };
    const bag = this.remoteUnitBag(relation, target.owner);
    if (!bag) this.refuse('relation-get', `unit '${target.owner}' is not in relation ${relationId}`);
    return { ...bag };
  }

  async relationSet(relationId: string, data: StringMap, app: boolean): Promise<void> {
    this.record('relation-set', '-r', relationId, ...(app ? ['--app'] : []), ...Object.keys(data).map((key) => `${key}=…`));
    const relation = this.relation('relation-set', relationId);
    if (app && !this.leader) {
      this.refuse('relation-set', `permission denied: ${this.run.unitName} is not the leader, and only the leader writes application data`);
    }
    const bag = app ? relation.localAppData : relation.localUnitData;
    for (const [key, value] of Object.entries(data)) {
      if (typeof value !== 'string') this.refuse('relation-set', `value of '${key}' must be a string`);
      if (value === '') delete bag[key];
      else bag[key] = value;
    }
  }

  async isLeader(): Promise<boolean> {
    this.record('is-leader');
    return this.leader;
  }

  async statusSet(status: SettableStatus, message: string, application: boolean): Promise<void> {
    this.record('status-set', `--application=${application}`, status, message);
    if (application) {
      if (!this.leader) this.refuse('status-set', 'cannot set application status: this unit is not the leader');
      this.appStatus = { status, message };
      this.appStatusHistory.push(this.appStatus);
    } else {
      this.unitStatus = { status, message };
      this.unitStatusHistory.push(this.unitStatus);
    }
  }

  async applicationVersionSet(version: string): Promise<void> {
    this.record('application-version-set', version);
    this.workloadVersion = version;
  }

  async actionGet(): Promise<Record<string, JsonValue>> {
    this.record('action-get');
    const action = this.requireAction('action-get');
    const params: Record<string, JsonValue> = {};
    for (const [param, spec] of Object.entries(this.meta.actions[action.name]?.params ?? {})) {
      if (spec.default !== undefined) params[param] = spec.default;
    }
    return { ...params, ...action.params };
  }

  async actionSet(results: StringMap): Promise<void> {
    this.record('action-set', ...Object.keys(results).map((key) => `${key}=…`));
    this.requireAction('action-set');
    Object.assign(this.actionResults, results);
  }

  async actionFail(message: string): Promise<void> {
    this.record('action-fail', message);
    this.requireAction('action-fail');
    this.actionFailure = message;
  }

  async actionLog(message: string): Promise<void> {
    this.record('action-log', message);
    this.requireAction('action-log');
    this.actionLogs.push(message);
  }

  async jujuLog(level: LogLevel, message: string): Promise<void> {
    this.record('juju-log', '--log-level', level);
    this.logs.push({ level, message });
  }

  async openPort(port: Port): Promise<void> {
    this.record('open-port', formatPort(port));
    if (!this.openedPorts.some((open) => formatPort(open) === formatPort(port))) this.openedPorts.push(port);
  }

  async closePort(port: Port): Promise<void> {
    this.record('close-port', formatPort(port));
    this.openedPorts = this.openedPorts.filter((open) => formatPort(open) !== formatPort(port));
  }

  async networkGet(binding: string, relationId?: string): Promise<NetworkInfo> {
    this.record('network-get', binding, ...(relationId ? ['-r', relationId] : []));
    if (!this.meta.endpoints[binding] && !this.meta.extraBindings.includes(binding)) {
      this.refuse('network-get', `no network config found for binding '${binding}'`);
    }
    return this.networks[binding] ?? defaultNetwork();
  }

  async secretAdd(content: StringMap, options: SecretAddOptions = {}): Promise<string> {
    this.record('secret-add', ...(options.label ? ['--label', options.label] : []), ...Object.keys(content).map((key) => `${key}=…`));
    const owner = options.owner === 'unit' ? 'unit' : 'app';
    if (owner === 'app' && !this.leader) {
      this.refuse('secret-add', 'permission denied: only the leader can create application-owned secrets');
    }
    this.checkContent('secret-add', content);
    if (options.label && this.secrets.some((secret) => secret.owner !== undefined && secret.label === options.label)) {
      this.refuse('secret-add', `secret with label '${options.label}' already exists`);
    }
    const id = newSecretId();
    this.secrets.push({
      id,
      owner,
      revisions: new Map([[1, { ...content }]]),
      trackedRevision: undefined,
      label: options.label,
      description: options.description,
      grantedTo: undefined,
      grants: new Map(),
    });
    return id;
  }

  async secretGet(id: string, options: SecretGetOptions = {}): Promise<StringMap> {
    this.record('secret-get', id, ...(options.refresh ? ['--refresh'] : []), ...(options.peek ? ['--peek'] : []));
    const secret = this.secret('secret-get', id);
    if (secret.owner === undefined && secret.grantedTo === undefined) {
      this.refuse('secret-get', `permission denied: secret ${id} has not been granted to ${this.run.unitName}`);
    }
    const latest = Math.max(...secret.revisions.keys());
    let revision: number;
    if (secret.owner !== undefined || options.peek) revision = latest;
    else if (options.refresh || secret.trackedRevision === undefined) {
      secret.trackedRevision = latest;
      revision = latest;
    } else revision = secret.trackedRevision;
    const content = secret.revisions.get(revision);
    if (!content) this.refuse('secret-get', `secret ${id} has no revision ${revision}`);
    return { ...content };
  }

  async secretSet(id: string, content: StringMap): Promise<void> {
    this.record('secret-set', id, ...Object.keys(content).map((key) => `${key}=…`));
    const secret = this.ownedSecret('secret-set', id);
    this.checkContent('secret-set', content);
    secret.revisions.set(Math.max(0, ...secret.revisions.keys()) + 1, { ...content });
  }

  async secretGrant(id: string, relationId: string, unit?: string): Promise<void> {
    this.record('secret-grant', id, '-r', relationId, ...(unit ? ['--unit', unit] : []));
    const secret = this.ownedSecret('secret-grant', id);
    const relation = this.relation('secret-grant', relationId);
    if (unit !== undefined && !this.remoteUnitBag(relation, unit)) {
      this.refuse('secret-grant', `unit '${unit}' is not in relation ${relationId}`);
    }
    const grantees = secret.grants.get(relation.id) ?? new Set<string>();
    grantees.add(unit ?? relation.remoteApp);
    secret.grants.set(relation.id, grantees);
  }

  async secretRevoke(id: string, relationId: string, unit?: string): Promise<void> {
    this.record('secret-revoke', id, '-r', relationId, ...(unit ? ['--unit', unit] : []));
    const secret = this.ownedSecret('secret-revoke', id);
    const relation = this.relation('secret-revoke', relationId);
    const grantees = secret.grants.get(relation.id);
    if (!grantees) return;
    grantees.delete(unit ?? relation.remoteApp);
    if (grantees.size === 0) secret.grants.delete(relation.id);
  }

  async secretRemove(id: string, revision?: number): Promise<void> {
    this.record('secret-remove', id, ...(revision !== undefined ? ['--revision', String(revision)] : []));
    const secret = this.ownedSecret('secret-remove', id);
    if (revision !== undefined) {
      if (!secret.revisions.delete(revision)) this.refuse('secret-remove', `secret ${id} has no revision ${revision}`);
      if (secret.revisions.size > 0) return;
    }
    this.secrets.splice(this.secrets.indexOf(secret), 1);
  }

  async stateGet(): Promise<StringMap> {
    this.record('state-get');
    return { ...this.storedState };
  }

  async stateSet(data: StringMap): Promise<void> {
    this.record('state-set', ...Object.keys(data));
    Object.assign(this.storedState, data);
  }

  async stateDelete(key: string): Promise<void> {
    this.record('state-delete', key);
    delete this.storedState[key];
  }

  async resourceGet(name: string): Promise<string> {
    this.record('resource-get', name);
    if (!(name in this.meta.resources)) throw new HookToolError('resource-get', [name], 1, `ERROR resource "${name}" not found`);
    const file = this.initial.resources[name];
    if (file === undefined) throw new HookToolError('resource-get', [name], 1, `ERROR could not download resource: resource "${name}" has no file attached`);
    return file;
  }

  private workingRelation(relation: RelationState): WorkingRelation {
    const peer = this.meta.endpoints[relation.endpoint]?.role === 'peer';
    return {
      id: relation.id,
      endpoint: relation.endpoint,
      remoteApp: peer ? this.run.appName : (relation.remoteApp ?? 'remote'),
      peer,
      localAppData: copyBag(relation.localAppData),
      localUnitData: copyBag(relation.localUnitData),
      remoteAppData: copyBag(relation.remoteAppData),
      remoteUnitsData: new Map(
        Object.entries(relation.remoteUnitsData ?? (peer ? {} : { 0: {} })).map(([number, bag]) => [Number(number), copyBag(bag)]),
      ),
    };
  }

  private relationState(relation: WorkingRelation): RelationState {
    return {
      id: relation.id,
      endpoint: relation.endpoint,
      remoteApp: relation.remoteApp,
      localAppData: { ...relation.localAppData },
      localUnitData: { ...relation.localUnitData },
      ...(relation.peer ? {} : { remoteAppData: { ...relation.remoteAppData } }),
      remoteUnitsData: Object.fromEntries([...relation.remoteUnitsData.entries()].map(([number, bag]) => [number, { ...bag }])),
    };
  }

  private secretState(secret: WorkingSecret): SecretState {
    return {
      id: secret.id,
      ...(secret.owner ? { owner: secret.owner } : {}),
      revisions: Object.fromEntries([...secret.revisions.entries()].map(([revision, content]) => [revision, { ...content }])),
      ...(secret.trackedRevision !== undefined ? { trackedRevision: secret.trackedRevision } : {}),
      ...(secret.label !== undefined ? { label: secret.label } : {}),
      ...(secret.description !== undefined ? { description: secret.description } : {}),
      ...(secret.grantedTo ? { grantedTo: secret.grantedTo } : {}),
      ...(secret.grants.size > 0
        ? { grants: Object.fromEntries([...secret.grants.entries()].map(([relation, grantees]) => [relation, [...grantees].sort()])) }
        : {}),
    };
  }

  private relation(tool: string, relationId: string): WorkingRelation {
    const match = /^([a-z0-9-]+):(\d+)$/.exec(relationId);
    const relation = match ? this.relations.find((item) => item.id === Number(match[2]) && item.endpoint === match[1]) : undefined;
    if (!relation) this.refuse(tool, `invalid value "${relationId}" for option -r: relation not found`);
    return relation;
  }

  private remoteUnitBag(relation: WorkingRelation, unit: string): Record<string, string> | undefined {
    const match = /^(.+)\/(\d+)$/.exec(unit);
    if (!match || match[1] !== relation.remoteApp) return undefined;
    return relation.remoteUnitsData.get(Number(match[2]));
  }

  private secret(tool: string, id: string): WorkingSecret {
    const secret = this.secrets.find((item) => item.id === id);
    if (!secret) this.refuse(tool, `secret "${id}" not found`);
    return secret;
  }

  private ownedSecret(tool: string, id: string): WorkingSecret {
    const secret = this.secret(tool, id);
    if (secret.owner === undefined) this.refuse(tool, `permission denied: secret ${id} is owned by another application`);
    if (secret.owner === 'app' && !this.leader) {
      this.refuse(tool, `permission denied: only the leader can change application-owned secret ${id}`);
    }
    return secret;
  }

  private checkContent(tool: string, content: StringMap): void {
    if (Object.keys(content).length === 0) this.refuse(tool, 'secret content cannot be empty');
    for (const [key, value] of Object.entries(content)) {
      if (!SECRET_KEY_PATTERN.test(key)) this.refuse(tool, `invalid secret key "${key}": keys match ${SECRET_KEY_PATTERN.source}`);
      if (typeof value !== 'string' || value === '') this.refuse(tool, `secret value for "${key}" must be a non-empty string`);
    }
  }

  private requireAction(tool: string): NonNullable<MemoryRunInfo['action']> {
    if (!this.run.action) this.refuse(tool, `${tool} can only be used in an action context`);
    return this.run.action;
  }

  private record(tool: string, ...args: string[]): void {
    this.calls.push([tool, ...args].join(' '));
  }

  private refuse(tool: string, message: string): never {
    throw new HookToolError(tool, [], 1, `ERROR ${message}`);
  }
}
