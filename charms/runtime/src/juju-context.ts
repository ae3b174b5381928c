// What Juju tells a dispatch through its environment, parsed once into a typed value.
import { DispatchPathError, JujuEnvironmentError } from './errors.js';

/**
 * hooks/<hook> and actions/<action> come from the unit agent; a bare name
 * ('update_status') is an out-of-band dispatch, e.g. from a systemd timer through juju-exec.
 */
export type DispatchTarget =
  | { readonly kind: 'hook'; readonly name: string }
  | { readonly kind: 'action'; readonly name: string }
  | { readonly kind: 'out-of-band'; readonly name: string };

export type RelationEventKind = 'created' | 'joined' | 'changed' | 'departed' | 'broken';

export interface RelationContext {
  readonly endpoint: string;
  /** 'cluster:3' */
  readonly id: string;
  readonly remoteApp?: string;
  readonly remoteUnit?: string;
  readonly departingUnit?: string;
}

export interface SecretContext {
  readonly id: string;
  readonly label?: string;
  readonly revision?: number;
}

export interface JujuContext {
  readonly dispatchPath: string;
  readonly target: DispatchTarget;
  readonly unitName: string;
  readonly appName: string;
  readonly unitNumber: number;
  readonly modelName: string;
  readonly modelUuid: string;
  readonly charmDir: string;
  readonly jujuVersion: string;
  readonly machineId?: string;
  readonly availabilityZone?: string;
  readonly relation?: RelationContext;
  readonly action?: { readonly name: string; readonly uuid?: string };
  readonly secret?: SecretContext;
  readonly proxy: { readonly http?: string; readonly https?: string; readonly noProxy?: string };
}

/** Hook names use dashes; the out-of-band form (and ops habits) may use underscores. */
export function normaliseEventName(name: string): string {
  return name.replace(/_/g, '-');
}

export function parseDispatchPath(dispatchPath: string): DispatchTarget {
  const trimmed = dispatchPath.trim().replace(/^\.\//, '');
  const match = /^(hooks|actions)\/([a-z0-9][a-z0-9_-]*)$/.exec(trimmed);
  if (match) {
    const [, dir, name] = match;
    if (name === undefined) throw new DispatchPathError(dispatchPath);
    return dir === 'hooks' ? { kind: 'hook', name: normaliseEventName(name) } : { kind: 'action', name };
  }
  if (/^[a-z0-9][a-z0-9_-]*$/.test(trimmed)) return { kind: 'out-of-band', name: normaliseEventName(trimmed) };
  throw new DispatchPathError(dispatchPath);
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = optional(env, name);
  if (value === undefined) throw new JujuEnvironmentError(name, 'is not set');
  return value;
}

export function parseUnitName(unitName: string): { appName: string; unitNumber: number } {
  const match = /^([a-z][a-z0-9-]*)\/(\d+)$/.exec(unitName);
  if (!match || match[1] === undefined || match[2] === undefined) {
    throw new JujuEnvironmentError('JUJU_UNIT_NAME', `is '${unitName}', not '<application>/<number>'`);
  }
  return { appName: match[1], unitNumber: Number(match[2]) };
}

export function readJujuContext(env: NodeJS.ProcessEnv): JujuContext {
  const dispatchPath = required(env, 'JUJU_DISPATCH_PATH');
  const target = parseDispatchPath(dispatchPath);
  const unitName = required(env, 'JUJU_UNIT_NAME');
  const { appName, unitNumber } = parseUnitName(unitName);

  const relationId = optional(env, 'JUJU_RELATION_ID');
  const relationEndpoint = optional(env, 'JUJU_RELATION') ?? relationId?.split(':')[0];
  const relation: RelationContext | undefined =
    relationId && relationEndpoint
      ? {
          endpoint: relationEndpoint,
          id: relationId,
          ...withOptional('remoteApp', optional(env, 'JUJU_REMOTE_APP')),
          ...withOptional('remoteUnit', optional(env, 'JUJU_REMOTE_UNIT')),
          ...withOptional('departingUnit', optional(env, 'JUJU_DEPARTING_UNIT')),
        }
      : undefined;

  const secretId = optional(env, 'JUJU_SECRET_ID');
  const secretRevision = optional(env, 'JUJU_SECRET_REVISION');
  const secret: SecretContext | undefined = secretId
    ? {
        id: secretId,
        ...withOptional('label', optional(env, 'JUJU_SECRET_LABEL')),
        ...(secretRevision !== undefined && /^\d+$/.test(secretRevision) ? { revision: Number(secretRevision) } : {}),
      }
    : undefined;

  const actionName = optional(env, 'JUJU_ACTION_NAME') ?? (target.kind === 'action' ? target.name : undefined);

  return {
    dispatchPath,
    target,
    unitName,
    appName,
    unitNumber,
    modelName: optional(env, 'JUJU_MODEL_NAME') ?? '',
    modelUuid: optional(env, 'JUJU_MODEL_UUID') ?? '',
    charmDir: optional(env, 'JUJU_CHARM_DIR') ?? process.cwd(),
    jujuVersion: optional(env, 'JUJU_VERSION') ?? '',
    ...withOptional('machineId', optional(env, 'JUJU_MACHINE_ID')),
    ...withOptional('availabilityZone', optional(env, 'JUJU_AVAILABILITY_ZONE')),
    ...(relation ? { relation } : {}),
    ...(target.kind === 'action' && actionName
      ? { action: { name: actionName, ...withOptional('uuid', optional(env, 'JUJU_ACTION_UUID')) } }
      : {}),
    ...(secret ? { secret } : {}),
    proxy: {
      ...withOptional('http', optional(env, 'JUJU_CHARM_HTTP_PROXY')),
      ...withOptional('https', optional(env, 'JUJU_CHARM_HTTPS_PROXY')),
      ...withOptional('noProxy', optional(env, 'JUJU_CHARM_NO_PROXY')),
    },
  };
}

function withOptional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}

/** The relation event a hook name denotes, given the endpoint Juju named in JUJU_RELATION. */
export function relationEventKind(hookName: string, endpoint: string): RelationEventKind | undefined {
  const prefix = `${endpoint}-relation-`;
  if (!hookName.startsWith(prefix)) return undefined;
  const kind = hookName.slice(prefix.length);
  return kind === 'created' || kind === 'joined' || kind === 'changed' || kind === 'departed' || kind === 'broken'
    ? kind
    : undefined;
}
