// State in → event → state out, like ops' Scenario: run a charm against a declared
// State with the in-memory hook tools and get back the State that comes out.
import { runCharm, type Charm } from '../charm.js';
import { CharmRuntimeError } from '../errors.js';
import type { JujuContext, RelationContext } from '../juju-context.js';
import type { CharmMeta } from '../metadata.js';
import { checkConsistency } from './consistency.js';
import { on, type TestEvent } from './events.js';
import { MemoryHookTools, type LogRecord, type MemoryRunInfo } from './memory-hooktools.js';
import { createState, type State, type StateInput, type StatusState } from './state.js';

export class InconsistentStateError extends CharmRuntimeError {
  constructor(readonly problems: readonly string[]) {
    super(`the State and event are inconsistent (fix the test's State):\n  - ${problems.join('\n  - ')}`);
  }
}

/** The charm raised; Juju would mark the hook failed and discard relation data, ports and secrets. */
export class UncaughtCharmError extends CharmRuntimeError {
  constructor(
    readonly event: string,
    override readonly cause: unknown,
  ) {
    super(`the charm raised during ${event}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** The action called action-fail. The State that came out is attached. */
export class ActionFailed extends CharmRuntimeError {
  constructor(
    message: string,
    readonly state: State,
    readonly results: Readonly<Record<string, string>>,
  ) {
    super(message);
  }
}

export interface ContextOptions {
  /** Defaults to the charm name. */
  readonly appName?: string;
  readonly unitId?: number;
  readonly jujuVersion?: string;
  readonly availabilityZone?: string;
}

export class Context {
  readonly on = on;
  readonly appName: string;
  readonly unitId: number;
  /** Records of the last run. */
  unitStatusHistory: StatusState[] = [];
  appStatusHistory: StatusState[] = [];
  jujuLog: LogRecord[] = [];
  actionLogs: string[] = [];
  actionResults: Readonly<Record<string, string>> | undefined;
  hookToolCalls: string[] = [];

  constructor(
    readonly charm: Charm,
    readonly meta: CharmMeta,
    private readonly options: ContextOptions = {},
  ) {
    this.appName = options.appName ?? meta.name;
    this.unitId = options.unitId ?? 0;
  }

  get unitName(): string {
    return `${this.appName}/${this.unitId}`;
  }

  async run(event: TestEvent, input: StateInput = {}): Promise<State> {
    const state = createState(input);
    const problems = checkConsistency({ meta: this.meta, appName: this.appName, unitId: this.unitId }, state, event);
    if (problems.length > 0) throw new InconsistentStateError(problems);

    const context = this.jujuContext(event, state);
    const tools = new MemoryHookTools(this.meta, state, this.runInfo(event, context));
    try {
      await runCharm(this.charm, context, tools);
    } catch (error) {
      throw new UncaughtCharmError(context.dispatchPath, error);
    } finally {
      this.unitStatusHistory = tools.unitStatusHistory;
      this.appStatusHistory = tools.appStatusHistory;
      this.jujuLog = tools.logs;
      this.actionLogs = tools.actionLogs;
      this.actionResults = event.kind === 'action' ? tools.actionResults : undefined;
      this.hookToolCalls = tools.calls;
    }
    const out = tools.snapshot();
    if (tools.actionFailure !== undefined) throw new ActionFailed(tools.actionFailure, out, tools.actionResults);
    return out;
  }

  private runInfo(event: TestEvent, context: JujuContext): MemoryRunInfo {
    return {
      unitName: this.unitName,
      appName: this.appName,
      ...(event.kind === 'hook' && event.relation ? { eventRelationId: event.relation.id } : {}),
      ...(event.kind === 'hook' && event.relationKind === 'departed' && context.relation?.remoteUnit
        ? { departedUnit: context.relation.remoteUnit }
        : {}),
      ...(event.kind === 'hook' && event.relationKind === 'broken' ? { brokenRelation: true } : {}),
      ...(event.kind === 'action' ? { action: { name: event.name, params: event.params } } : {}),
    };
  }

  private jujuContext(event: TestEvent, state: State): JujuContext {
    const base = {
      unitName: this.unitName,
      appName: this.appName,
      unitNumber: this.unitId,
      modelName: state.model.name,
      modelUuid: state.model.uuid,
      charmDir: '/var/lib/juju/agents/unit-test/charm',
      jujuVersion: this.options.jujuVersion ?? '3.6.0',
      ...(this.options.availabilityZone ? { availabilityZone: this.options.availabilityZone } : {}),
      proxy: {},
    };
    if (event.kind === 'action') {
      const dispatchPath = `actions/${event.name}`;
      return { ...base, dispatchPath, target: { kind: 'action', name: event.name }, action: { name: event.name, uuid: '1' } };
    }
    const dispatchPath = event.outOfBand ? event.name.replace(/-/g, '_') : `hooks/${event.name}`;
    return {
      ...base,
      dispatchPath,
      target: { kind: event.outOfBand ? 'out-of-band' : 'hook', name: event.name },
      ...(event.relation ? { relation: this.relationContext(event) } : {}),
      ...(event.secret
        ? {
            secret: {
              id: event.secret.id,
              ...(event.secret.label ? { label: event.secret.label } : {}),
              ...(event.secretRevision !== undefined ? { revision: event.secretRevision } : {}),
            },
          }
        : {}),
    };
  }

  private relationContext(event: TestEvent & { kind: 'hook' }): RelationContext {
    const relation = event.relation;
    if (!relation) throw new InconsistentStateError(['relation event without a relation']);
    const peer = this.meta.endpoints[relation.endpoint]?.role === 'peer';
    const remoteApp = peer ? this.appName : (relation.remoteApp ?? 'remote');
    const units = Object.keys(relation.remoteUnitsData ?? (peer ? {} : { 0: {} })).map(Number);
    const hasRemoteUnit = event.relationKind !== 'created' && event.relationKind !== 'broken';
    const number = event.remoteUnit ?? (units.length === 1 ? units[0] : undefined);
    const remoteUnit = hasRemoteUnit && number !== undefined ? `${remoteApp}/${number}` : undefined;
    const departingUnit = event.relationKind === 'departed' ? (event.departingUnit ?? remoteUnit) : undefined;
    return {
      endpoint: relation.endpoint,
      id: `${relation.endpoint}:${relation.id}`,
      remoteApp,
      ...(remoteUnit ? { remoteUnit } : {}),
      ...(departingUnit ? { departingUnit } : {}),
    };
  }
}
