import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '../runtime/src/hooktools.js';
import { isJsonObject, type JsonObject } from '../runtime/src/json.js';
import { JsonSchemaValidator } from '../runtime/src/testing/json-schema.js';

const schemaPath = '/work/shared/schemas/charmcraft.json';
const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as JsonObject;
const validator = new JsonSchemaValidator(schema);

function charmcraft(charm: string): JsonObject {
  const value = yaml.load(readFileSync(fileURLToPath(new URL(`../${charm}/charmcraft.yaml`, import.meta.url)), 'utf8'));
  if (!isJsonObject(value)) throw new Error(`${charm}/charmcraft.yaml is not a mapping`);
  return value;
}

describe('charmcraft.yaml against the charmcraft JSON schema', () => {
  it.each(['k8s', 'k8s-worker'])('%s/charmcraft.yaml is valid', (charm) => {
    expect(validator.validate(charmcraft(charm))).toEqual([]);
  });

  describe('the validator rejects what charmcraft would', () => {
    const valid = charmcraft('k8s');
    const without = (key: string): JsonObject => Object.fromEntries(Object.entries(valid).filter(([name]) => name !== key));

    it.each<[string, JsonValue]>([
      ['an unknown top-level key', { ...valid, flavour: 'vanilla' }],
      ['a missing type', without('type')],
      ['a type other than charm', { ...valid, type: 'bundle' }],
      ['a missing summary', without('summary')],
      ['an unknown base', { ...valid, base: 'ubuntu@19.10' }],
      ['empty parts', { ...valid, parts: {} }],
      ['a name over 40 characters', { ...valid, name: 'k'.repeat(41) }],
      ['a platform named "any"', { ...valid, platforms: { any: { 'build-on': ['amd64'], 'build-for': ['amd64'] } } }],
      ['a platform without build-for', { ...valid, platforms: { mine: { 'build-on': ['amd64'] } } }],
    ])('%s', (_name, document) => {
      expect(validator.validate(document)).not.toEqual([]);
    });
  });

  it.each(['k8s', 'k8s-worker'])('%s: every part builds from inside the charm folder', (charm) => {
    const parts = charmcraft(charm).parts;
    expect(isJsonObject(parts)).toBe(true);
    for (const [name, part] of Object.entries(isJsonObject(parts) ? parts : {})) {
      if (!isJsonObject(part)) throw new Error(`part ${name} is not a mapping`);
      const source = part.source;
      if (typeof source === 'string') {
        expect(path.isAbsolute(source) || /^[a-z+]+:\/\//.test(source), `${name}.source ${source}`).toBe(false);
        expect(path.normalize(source).split(path.sep)[0], `${name}.source ${source}`).not.toBe('..');
      }
      for (const key of ['override-pull', 'override-build', 'override-stage', 'override-prime']) {
        const script = part[key];
        if (typeof script === 'string') expect(script, `${name}.${key}`).not.toMatch(/\.\.\/|CRAFT_PROJECT_DIR\/\.\./);
      }
    }
  });
});
