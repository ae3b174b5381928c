// Checks that a State and an event could exist together in a real Juju model, so a test
// cannot pass against a world Juju would never produce.
import { SECRET_KEY_PATTERN, type JsonValue } from '../hooktools.js';
import { configValueMatches, type CharmMeta } from '../metadata.js';
import type { TestEvent } from './events.js';
import type { State } from './state.js';

export interface ConsistencyTarget {
  readonly meta: CharmMeta;
  readonly appName: string;
  readonly unitId: number;
}

export function checkConsistency(target: ConsistencyTarget, state: State, event: TestEvent): string[] {
  return [...checkConfig(target, state), ...checkRelations(target, state), ...checkNetworks(target, state), ...checkSecrets(state), ...checkEvent(target, state, event)];
}

function checkConfig({ meta }: ConsistencyTarget, state: State): string[] {
  const problems: string[] = [];
  for (const [option, value] of Object.entries(state.config)) {
    const spec = meta.config[option];
    if (!spec) problems.push(`config option '${option}' is not declared in ${meta.name}'s charmcraft.yaml`);
    else if (!configValueMatches(spec.type, value)) problems.push(`config option '${option}' is a ${spec.type}, got ${JSON.stringify(value)}`);
  }
  return problems;
}

function checkRelations({ meta, appName, unitId }: ConsistencyTarget, state: State): string[] {
  const problems: string[] = [];
  const seen = new Set<number>();
  const perEndpoint = new Map<string, number>();
  for (const relation of state.relations) {
    if (seen.has(relation.id)) problems.push(`relation id ${relation.id} is used twice`);
    seen.add(relation.id);
    const endpoint = meta.endpoints[relation.endpoint];
    if (!endpoint) {
      problems.push(`relation ${relation.id} uses endpoint '${relation.endpoint}', which ${meta.name} does not declare`);
      continue;
    }
    perEndpoint.set(relation.endpoint, (perEndpoint.get(relation.endpoint) ?? 0) + 1);
    if (endpoint.role === 'peer') {
      if (relation.remoteApp !== undefined && relation.remoteApp !== appName) {
        problems.push(`peer relation '${relation.endpoint}' is with the charm's own application '${appName}', not '${relation.remoteApp}'`);
      }
      if (relation.remoteAppData !== undefined) {
        problems.push(`peer relation '${relation.endpoint}' has no remote application bag: peers share localAppData`);
      }
      if (relation.remoteUnitsData && Object.keys(relation.remoteUnitsData).map(Number).includes(unitId)) {
        problems.push(`peer relation '${relation.endpoint}' lists the local unit ${appName}/${unitId} among its peers`);
      }
    } else if (relation.remoteApp === appName) {
      problems.push(`relation '${relation.endpoint}' (${endpoint.role}) cannot be with the charm's own application`);
    }
    for (const [key, bag] of Object.entries({
      localAppData: relation.localAppData,
      localUnitData: relation.localUnitData,
      remoteAppData: relation.remoteAppData,
      ...Object.fromEntries(Object.entries(relation.remoteUnitsData ?? {}).map(([number, data]) => [`remote unit ${number}`, data])),
    })) {
      for (const [field, value] of Object.entries(bag ?? {})) {
        if (typeof value !== 'string') problems.push(`relation ${relation.id} ${key}: '${field}' must be a string (Juju stores strings only)`);
      }
    }
  }
  for (const [name, count] of perEndpoint) {
    const limit = meta.endpoints[name]?.limit;
    if (limit !== undefined && count > limit) problems.push(`endpoint '${name}' has ${count} relations but its limit is ${limit}`);
    if (meta.endpoints[name]?.role === 'peer' && count > 1) problems.push(`peer endpoint '${name}' can have only one relation`);
  }
  return problems;
}

function checkNetworks({ meta }: ConsistencyTarget, state: State): string[] {
  return Object.keys(state.networks)
    .filter((binding) => !meta.endpoints[binding] && !meta.extraBindings.includes(binding))
    .map((binding) => `network '${binding}' is neither an endpoint nor an extra binding of ${meta.name}`);
}

function checkSecrets(state: State): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const relationIds = new Set(state.relations.map((relation) => relation.id));
  for (const secret of state.secrets) {
    if (!/^secret:[a-z0-9]{20}$/.test(secret.id)) problems.push(`secret id '${secret.id}' is not 'secret:' followed by 20 lower-case letters or digits`);
    if (seen.has(secret.id)) problems.push(`secret ${secret.id} is declared twice`);
    seen.add(secret.id);
    const revisions = Object.keys(secret.revisions).map(Number);
    if (revisions.length === 0) problems.push(`secret ${secret.id} has no revisions`);
    for (const content of Object.values(secret.revisions)) {
      for (const key of Object.keys(content)) {
        if (!SECRET_KEY_PATTERN.test(key)) problems.push(`secret ${secret.id} key '${key}' does not match ${SECRET_KEY_PATTERN.source}`);
      }
    }
    if (secret.trackedRevision !== undefined && !revisions.includes(secret.trackedRevision)) {
      problems.push(`secret ${secret.id} tracks revision ${secret.trackedRevision}, which it does not have`);
    }
    if (secret.owner === undefined && secret.grants) problems.push(`secret ${secret.id} is owned elsewhere, so this charm cannot have granted it`);
    if (secret.owner !== undefined && secret.grantedTo) problems.push(`secret ${secret.id} is owned by this charm; grantedTo is for secrets owned elsewhere`);
    for (const relation of Object.keys(secret.grants ?? {}).map(Number)) {
      if (!relationIds.has(relation)) problems.push(`secret ${secret.id} is granted over relation ${relation}, which is not in the State`);
    }
  }
  return problems;
}

function checkEvent({ meta, appName, unitId }: ConsistencyTarget, state: State, event: TestEvent): string[] {
  const problems: string[] = [];
  if (event.kind === 'action') {
    const action = meta.actions[event.name];
    if (!action) return [`action '${event.name}' is not declared in ${meta.name}'s charmcraft.yaml`];
    for (const required of action.required) {
      if (event.params[required] === undefined) problems.push(`action '${event.name}' requires the parameter '${required}'`);
    }
    for (const [param, value] of Object.entries(event.params)) {
      const spec = action.params[param];
      if (!spec) {
        if (!action.additionalProperties) problems.push(`action '${event.name}' has no parameter '${param}'`);
        continue;
      }
      if (spec.type && !jsonTypeMatches(spec.type, value)) problems.push(`action parameter '${param}' must be a ${spec.type}`);
    }
    return problems;
  }

  if (event.name === 'leader-elected' && !state.leader) problems.push('leader-elected fires only on the leader: set leader: true');

  if (event.relation) {
    const relation = event.relation;
    const inState = state.relations.find((item) => item.id === relation.id);
    if (!inState) problems.push(`the event's relation ${relation.endpoint}:${relation.id} is not in the State`);
    else if (inState !== relation) problems.push(`the event's relation ${relation.id} is a different object from the State's: pass the relation object held in the State`);
    const peer = meta.endpoints[relation.endpoint]?.role === 'peer';
    const remoteUnits = Object.keys(relation.remoteUnitsData ?? (peer ? {} : { 0: {} })).map(Number);
    const needsUnit = event.relationKind === 'joined' || event.relationKind === 'changed' || event.relationKind === 'departed';
    if (needsUnit) {
      if (event.remoteUnit === undefined && remoteUnits.length !== 1) {
        problems.push(`${event.name} needs remoteUnit: relation ${relation.id} has ${remoteUnits.length} remote units`);
      }
      if (event.remoteUnit !== undefined && !remoteUnits.includes(event.remoteUnit)) {
        problems.push(`${event.name}: remote unit ${event.remoteUnit} is not in relation ${relation.id}`);
      }
    }
    if (event.departingUnit !== undefined) {
      if (event.relationKind !== 'departed') problems.push('departingUnit only applies to relation-departed');
      const remoteApp = peer ? appName : (relation.remoteApp ?? 'remote');
      const match = /^(.+)\/(\d+)$/.exec(event.departingUnit);
      const isLocal = event.departingUnit === `${appName}/${unitId}`;
      if (!match || (!isLocal && !(match[1] === remoteApp && remoteUnits.includes(Number(match[2]))))) {
        problems.push(`departing unit '${event.departingUnit}' is neither this unit nor a unit of relation ${relation.id}`);
      }
    }
  }

  if (event.secret) {
    const secret = event.secret;
    if (!state.secrets.includes(secret)) problems.push(`the event's secret ${secret.id} is not (the same object as) a secret in the State`);
    if (event.name === 'secret-changed' && secret.owner !== undefined) problems.push('secret-changed fires on consumers, not on the owner');
    if (['secret-remove', 'secret-rotate', 'secret-expired'].includes(event.name) && secret.owner === undefined) {
      problems.push(`${event.name} fires on the owner only`);
    }
    if (event.secretRevision !== undefined && !(event.secretRevision in secret.revisions)) {
      problems.push(`secret ${secret.id} has no revision ${event.secretRevision}`);
    }
  }
  return problems;
}

function jsonTypeMatches(type: string, value: JsonValue): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}
