// A small JSON Schema (2020-12 subset) validator: enough for the crafts schemas' keywords
// ($ref into $defs, type, enum, const, anyOf/oneOf/allOf/not, properties, required,
// additionalProperties, patternProperties, propertyNames, items, min/max Items/Length/Properties,
// uniqueItems, pattern). 'format', 'default', 'examples' and OpenAPI 'discriminator' are annotations.
import type { JsonValue } from '../hooktools.js';
import { isJsonObject, type JsonObject } from '../json.js';

export interface SchemaError {
  /** JSON pointer into the instance. */
  readonly path: string;
  readonly message: string;
}

export class JsonSchemaValidator {
  constructor(private readonly root: JsonObject) {}

  validate(instance: JsonValue): SchemaError[] {
    return this.check(this.root, instance, '');
  }

  private resolve(ref: string): JsonValue {
    if (!ref.startsWith('#')) throw new Error(`only local $ref is supported, got '${ref}'`);
    let node: JsonValue = this.root;
    for (const raw of ref.slice(1).split('/').filter(Boolean)) {
      const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isJsonObject(node) || !(part in node)) throw new Error(`cannot resolve $ref '${ref}'`);
      node = node[part] as JsonValue;
    }
    return node;
  }

  private check(schema: JsonValue, value: JsonValue, path: string): SchemaError[] {
    if (schema === true) return [];
    if (schema === false) return [{ path, message: 'no value is allowed here' }];
    if (!isJsonObject(schema)) return [];
    const errors: SchemaError[] = [];
    const fail = (message: string, at = path): void => {
      errors.push({ path: at || '/', message });
    };

    if (typeof schema.$ref === 'string') errors.push(...this.check(this.resolve(schema.$ref), value, path));

    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (!types.some((type) => typeof type === 'string' && typeMatches(type, value))) fail(`must be ${types.join(' or ')}`);
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((option) => deepEqual(option, value))) {
      fail(`must be one of ${JSON.stringify(schema.enum)}`);
    }
    if ('const' in schema && schema.const !== undefined && !deepEqual(schema.const, value)) fail(`must be ${JSON.stringify(schema.const)}`);

    if (Array.isArray(schema.allOf)) for (const sub of schema.allOf) errors.push(...this.check(sub, value, path));
    if (Array.isArray(schema.anyOf) && !schema.anyOf.some((sub) => this.check(sub, value, path).length === 0)) {
      const nested = schema.anyOf.map((sub) => this.check(sub, value, path));
      fail(`matches none of anyOf: ${summarise(nested)}`);
    }
    if (Array.isArray(schema.oneOf)) {
      const results = schema.oneOf.map((sub) => this.check(sub, value, path));
      const matches = results.filter((result) => result.length === 0).length;
      if (matches !== 1) fail(matches === 0 ? `matches none of oneOf: ${summarise(results)}` : `matches ${matches} of oneOf, expected exactly one`);
    }
    if (schema.not !== undefined && this.check(schema.not, value, path).length === 0) fail('matches a schema it must not match');

    if (typeof value === 'string') {
      if (typeof schema.minLength === 'number' && [...value].length < schema.minLength) fail(`must be at least ${schema.minLength} characters`);
      if (typeof schema.maxLength === 'number' && [...value].length > schema.maxLength) fail(`must be at most ${schema.maxLength} characters`);
      if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) fail(`must match ${schema.pattern}`);
    }

    if (Array.isArray(value)) {
      if (typeof schema.minItems === 'number' && value.length < schema.minItems) fail(`must have at least ${schema.minItems} items`);
      if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) fail(`must have at most ${schema.maxItems} items`);
      if (schema.uniqueItems === true && value.some((item, index) => value.findIndex((other) => deepEqual(other, item)) !== index)) {
        fail('items must be unique');
      }
      if (schema.items !== undefined && !Array.isArray(schema.items)) {
        value.forEach((item, index) => errors.push(...this.check(schema.items as JsonValue, item, `${path}/${index}`)));
      }
    }

    if (isJsonObject(value)) errors.push(...this.checkObject(schema, value, path));
    return errors;
  }

  private checkObject(schema: JsonObject, value: JsonObject, path: string): SchemaError[] {
    const errors: SchemaError[] = [];
    const keys = Object.keys(value);
    if (typeof schema.minProperties === 'number' && keys.length < schema.minProperties) {
      errors.push({ path: path || '/', message: `must have at least ${schema.minProperties} properties` });
    }
    if (Array.isArray(schema.required)) {
      for (const key of schema.required) {
        if (typeof key === 'string' && !(key in value)) errors.push({ path: path || '/', message: `must have the property '${key}'` });
      }
    }
    const properties = isJsonObject(schema.properties) ? schema.properties : {};
    const patterns = isJsonObject(schema.patternProperties) ? Object.entries(schema.patternProperties) : [];
    for (const key of keys) {
      const child = value[key] as JsonValue;
      const at = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (schema.propertyNames !== undefined) {
        for (const error of this.check(schema.propertyNames, key, at)) errors.push({ path: at, message: `property name ${error.message}` });
      }
      let matched = false;
      if (key in properties) {
        matched = true;
        errors.push(...this.check(properties[key] as JsonValue, child, at));
      }
      for (const [pattern, sub] of patterns) {
        if (new RegExp(pattern, 'u').test(key)) {
          matched = true;
          errors.push(...this.check(sub, child, at));
        }
      }
      if (!matched && schema.additionalProperties !== undefined) {
        if (schema.additionalProperties === false) errors.push({ path: at, message: `'${key}' is not an allowed property` });
        else errors.push(...this.check(schema.additionalProperties, child, at));
      }
    }
    return errors;
  }
}

function typeMatches(type: string, value: JsonValue): boolean {
  switch (type) {
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isJsonObject(value);
    default:
      return false;
  }
}

function deepEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: JsonValue | undefined): JsonValue | undefined {
  if (Array.isArray(value)) return value.map((item) => canonical(item) ?? null);
  if (isJsonObject(value)) {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical(value[key]) ?? null]));
  }
  return value;
}

function summarise(results: SchemaError[][]): string {
  return results.map((result, index) => `[${index}] ${result.map((error) => `${error.path} ${error.message}`).join('; ')}`).join(' | ');
}
