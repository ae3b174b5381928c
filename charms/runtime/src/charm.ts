// What a charm is to the runtime, and the one function that runs it for a dispatch.
// Both the real dispatch (ExecaHookTools) and the test Context (MemoryHookTools) call runCharm.
import { ACTION_RESULT_KEY_PATTERN, RESERVED_ACTION_RESULT_KEYS, type HookTools, type JsonValue } from './hooktools.js';
import { relationEventKind, type JujuContext, type RelationContext, type RelationEventKind, type SecretContext } from './juju-context.js';
import { ActionParamsError } from './errors.js';
import { isJsonObject } from './json.js';
import { Model } from './model.js';

export interface RelationEvent extends RelationContext {
  readonly kind: RelationEventKind;
}

export interface HookEvent {
  /** The hook name with dashes: 'install', 'cluster-relation-departed', 'update-status'. */
  readonly name: string;
  /** True for a bare JUJU_DISPATCH_PATH ('update_status'), sent outside the unit agent's hook queue. */
  readonly outOfBand: boolean;
  readonly relation?: RelationEvent;
  readonly secret?: SecretContext;
}

export type ActionParams = Readonly<Record<string, JsonValue>>;

export class Action {
  private failure: string | undefined;

  constructor(
    readonly name: string,
    readonly params: ActionParams,
    private readonly tools: HookTools,
  ) {}

  get failed(): boolean {
    return this.failure !== undefined;
  }

  stringParam(key: string, fallback?: string): string {
    const value = this.params[key];
    if (value === undefined || value === null) {
      if (fallback !== undefined) return fallback;
      throw new ActionParamsError(`action '${this.name}' needs the parameter '${key}'`);
    }
    if (typeof value !== 'string') throw new ActionParamsError(`action '${this.name}': parameter '${key}' must be a string`);
    return value;
  }

  /** Sets results; nested objects become dotted keys, as action-set expects. */
  async setResults(results: Readonly<Record<string, JsonValue>>): Promise<void> {
    await this.tools.actionSet(flattenResults(results));
  }

  async log(message: string): Promise<void> {
    await this.tools.actionLog(message);
  }

  /** Marks the action failed; the dispatch still exits 0, as Juju expects. */
  async fail(message: string): Promise<void> {
    this.failure = message;
    await this.tools.actionFail(message);
  }
}

export type ActionHandler = (action: Action, model: Model) => Promise<void>;

export interface Charm {
  /** Every hook and out-of-band event. */
  onHook(event: HookEvent, model: Model): Promise<void>;
  readonly actions: Readonly<Record<string, ActionHandler>>;
}

export function hookEventFrom(context: JujuContext): HookEvent {
  const name = context.target.name;
  const relation = context.relation;
  const kind = relation ? relationEventKind(name, relation.endpoint) : undefined;
  return {
    name,
    outOfBand: context.target.kind === 'out-of-band',
    ...(relation && kind ? { relation: { ...relation, kind } } : {}),
    ...(context.secret ? { secret: context.secret } : {}),
  };
}

/** Runs one dispatch: the hook or action handler, then the commit of staged relation data. */
export async function runCharm(charm: Charm, context: JujuContext, tools: HookTools): Promise<void> {
  const model = new Model(tools, context);
  if (context.target.kind === 'action') {
    const handler = charm.actions[context.target.name];
    if (!handler) {
      await tools.actionFail(`this charm has no action '${context.target.name}'; see 'juju actions <application>'`);
      return;
    }
    const action = new Action(context.target.name, await tools.actionGet(), tools);
    try {
      await handler(action, model);
    } catch (error) {
      if (!(error instanceof ActionParamsError)) throw error;
      await action.fail(error.message);
    }
  } else {
    await charm.onHook(hookEventFrom(context), model);
  }
  await model.commit();
}

export function flattenResults(results: Readonly<Record<string, JsonValue>>, prefix = ''): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [key, value] of Object.entries(results)) {
    if (!ACTION_RESULT_KEY_PATTERN.test(key)) {
      throw new ActionParamsError(`action result key '${key}' must be lower-case letters, digits and single dashes`);
    }
    const path = prefix ? `${prefix}.${key}` : key;
    if (!prefix && RESERVED_ACTION_RESULT_KEYS.has(key)) {
      throw new ActionParamsError(`action result key '${key}' is reserved by Juju; choose another name`);
    }
    if (isJsonObject(value)) Object.assign(flat, flattenResults(value, path));
    else if (value !== null) flat[path] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return flat;
}
