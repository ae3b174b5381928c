// charmcraft.yaml as typed charm metadata, for the test Context (consistency checks,
// config defaults) and for packing (metadata.yaml, config.yaml, actions.yaml).
import { readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { CharmRuntimeError } from './errors.js';
import type { ConfigValue, JsonValue } from './hooktools.js';
import { isJsonObject, type JsonObject } from './json.js';

export type EndpointRole = 'peer' | 'provides' | 'requires';
export type ConfigType = 'string' | 'int' | 'float' | 'boolean' | 'secret';

export interface EndpointMeta {
  readonly name: string;
  readonly role: EndpointRole;
  readonly interface: string;
  readonly limit?: number;
}

export interface ConfigOptionMeta {
  readonly type: ConfigType;
  readonly default?: ConfigValue;
  readonly description?: string;
}

export interface ActionParamMeta {
  readonly type?: string;
  readonly default?: JsonValue;
  readonly enum?: readonly JsonValue[];
}

export interface ActionMeta {
  readonly params: Readonly<Record<string, ActionParamMeta>>;
  readonly required: readonly string[];
  readonly additionalProperties: boolean;
}

export interface CharmMeta {
  readonly name: string;
  readonly endpoints: Readonly<Record<string, EndpointMeta>>;
  readonly config: Readonly<Record<string, ConfigOptionMeta>>;
  readonly actions: Readonly<Record<string, ActionMeta>>;
  readonly extraBindings: readonly string[];
  /** Declared resources by name (type 'file' or 'oci-image'). */
  readonly resources: Readonly<Record<string, { readonly type: string; readonly filename?: string }>>;
  /** The parsed charmcraft.yaml. */
  readonly raw: JsonObject;
}

export class CharmMetadataError extends CharmRuntimeError {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
  }
}

const CONFIG_TYPES: ReadonlySet<string> = new Set(['string', 'int', 'float', 'boolean', 'secret']);

export function loadCharmMeta(charmcraftPath: string): CharmMeta {
  return parseCharmMeta(readFileSync(charmcraftPath, 'utf8'), charmcraftPath);
}

export function parseCharmMeta(text: string, source = 'charmcraft.yaml'): CharmMeta {
  const raw = yaml.load(text);
  if (!isJsonObject(raw)) throw new CharmMetadataError(source, 'is not a YAML mapping');
  const name = raw.name;
  if (typeof name !== 'string' || name === '') throw new CharmMetadataError(source, "needs a 'name'");

  const endpoints: Record<string, EndpointMeta> = {};
  for (const [section, role] of [['peers', 'peer'], ['provides', 'provides'], ['requires', 'requires']] as const) {
    const block = raw[section];
    if (block === undefined || block === null) continue;
    if (!isJsonObject(block)) throw new CharmMetadataError(source, `'${section}' must be a mapping`);
    for (const [endpoint, spec] of Object.entries(block)) {
      if (!isJsonObject(spec) || typeof spec.interface !== 'string') {
        throw new CharmMetadataError(source, `${section}.${endpoint} needs an 'interface'`);
      }
      if (endpoints[endpoint]) throw new CharmMetadataError(source, `endpoint '${endpoint}' is declared twice`);
      endpoints[endpoint] = {
        name: endpoint,
        role,
        interface: spec.interface,
        ...(typeof spec.limit === 'number' ? { limit: spec.limit } : {}),
      };
    }
  }

  const config: Record<string, ConfigOptionMeta> = {};
  const configBlock = raw.config;
  const options = isJsonObject(configBlock) ? configBlock.options : undefined;
  if (isJsonObject(options)) {
    for (const [option, spec] of Object.entries(options)) {
      if (!isJsonObject(spec) || typeof spec.type !== 'string' || !CONFIG_TYPES.has(spec.type)) {
        throw new CharmMetadataError(source, `config option '${option}' needs a type (string, int, float, boolean or secret)`);
      }
      const type = spec.type as ConfigType;
      const fallback = spec.default;
      if (fallback !== undefined && fallback !== null && !configValueMatches(type, fallback)) {
        throw new CharmMetadataError(source, `config option '${option}' has a default that is not a ${type}`);
      }
      config[option] = {
        type,
        ...(typeof fallback === 'string' || typeof fallback === 'number' || typeof fallback === 'boolean' ? { default: fallback } : {}),
        ...(typeof spec.description === 'string' ? { description: spec.description } : {}),
      };
    }
  }

  const actions: Record<string, ActionMeta> = {};
  const actionsBlock = raw.actions;
  if (isJsonObject(actionsBlock)) {
    for (const [action, spec] of Object.entries(actionsBlock)) {
      const params: Record<string, ActionParamMeta> = {};
      const paramBlock = isJsonObject(spec) ? spec.params : undefined;
      if (isJsonObject(paramBlock)) {
        for (const [param, paramSpec] of Object.entries(paramBlock)) {
          if (!isJsonObject(paramSpec)) continue;
          params[param] = {
            ...(typeof paramSpec.type === 'string' ? { type: paramSpec.type } : {}),
            ...(paramSpec.default !== undefined ? { default: paramSpec.default } : {}),
            ...(Array.isArray(paramSpec.enum) ? { enum: paramSpec.enum } : {}),
          };
        }
      }
      const required = isJsonObject(spec) && Array.isArray(spec.required) ? spec.required.filter((r) => typeof r === 'string') : [];
      const additional = isJsonObject(spec) ? spec.additionalProperties : undefined;
      actions[action] = { params, required, additionalProperties: additional !== false };
    }
  }

  const resources: Record<string, { type: string; filename?: string }> = {};
  const resourceBlock = raw.resources;
  if (isJsonObject(resourceBlock)) {
    for (const [resource, spec] of Object.entries(resourceBlock)) {
      if (!isJsonObject(spec) || typeof spec.type !== 'string') throw new CharmMetadataError(source, `resource '${resource}' needs a type`);
      resources[resource] = { type: spec.type, ...(typeof spec.filename === 'string' ? { filename: spec.filename } : {}) };
    }
  }

  const extra = raw['extra-bindings'];
  return {
    resources,
    name,
    endpoints,
    config,
    actions,
    extraBindings: isJsonObject(extra) ? Object.keys(extra) : [],
    raw,
  };
}

export function configValueMatches(type: ConfigType, value: JsonValue): boolean {
  switch (type) {
    case 'string':
    case 'secret':
      return typeof value === 'string';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'float':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
  }
}

/** The files charmcraft generates from charmcraft.yaml, which Juju reads from the .charm. */
export function renderJujuMetadataFiles(meta: CharmMeta): { 'metadata.yaml': string; 'config.yaml': string; 'actions.yaml': string } {
  const metadataKeys = [
    'name', 'title', 'summary', 'description', 'assumes', 'peers', 'provides', 'requires',
    'extra-bindings', 'resources', 'storage', 'subordinate', 'terms', 'links',
  ];
  const metadata: JsonObject = {};
  for (const key of metadataKeys) {
    const value = meta.raw[key];
    if (value !== undefined && value !== null) metadata[key] = value;
  }
  const config = meta.raw.config;
  const actions = meta.raw.actions;
  const dump = (value: JsonValue): string => yaml.dump(value, { lineWidth: 120, noRefs: true });
  return {
    'metadata.yaml': dump(metadata),
    'config.yaml': dump(isJsonObject(config) ? config : { options: {} }),
    'actions.yaml': dump(isJsonObject(actions) ? actions : {}),
  };
}
