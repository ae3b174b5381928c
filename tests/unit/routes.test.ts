// One route per file (issue 14): every endpoint of src/api is served by exactly one file of
// src/k8sd/routes/, named after it (routes/<src/api module>/<endpoint in kebab case>.ts), which
// builds that one route and nothing else.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { local, peer, type Endpoint } from '../../src/api/index.js';
import type { Route } from '../../src/k8sd/http.js';
import type { z } from 'zod';

const SRC = path.resolve(import.meta.dirname, '../../src');
const ROUTES = path.join(SRC, 'k8sd/routes');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

const isEndpoint = (v: unknown): v is Endpoint<z.ZodType, unknown> => typeof v === 'object' && v !== null && 'method' in v && 'path' in v && 'request' in v;
const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Every endpoint as `<group>.<name>` (local or peer), with the src/api module that defines it. */
async function apiEndpoints(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  // The local API is the union of the modules src/api/local.ts re-exports, one per area.
  const areas = [...readFileSync(path.join(SRC, 'api/local.ts'), 'utf8').matchAll(/^export \* from '\.\/(\w+)\.js';$/gm)].map((m) => m[1]!);
  for (const area of areas) {
    const mod = (await import(path.join(SRC, `api/${area}.ts`))) as Record<string, unknown>;
    for (const [name, v] of Object.entries(mod)) if (isEndpoint(v)) out.set(`local.${name}`, area);
  }
  for (const [name, v] of Object.entries(peer)) if (isEndpoint(v)) out.set(`peer.${name}`, 'peer');
  return out;
}

/** A file's code without its comments (http.ts shows `at(...)` in one). */
const code = (file: string): string => readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

const routeFiles = sourceFiles(ROUTES).map((f) => ({ file: path.relative(ROUTES, f), text: code(f) }));

describe('k8sd routes, one per file', () => {
  it('finds the route files and the endpoints', async () => {
    expect(routeFiles.length).toBeGreaterThan(35);
    expect((await apiEndpoints()).size).toBeGreaterThan(35);
  });

  it('each file under src/k8sd/routes/ builds exactly one route, exported as <endpoint>Route', () => {
    const wrong = routeFiles.flatMap(({ file, text }) => {
      const ats = [...text.matchAll(/\bat\((local|peer)\.(\w+)\)/g)];
      const anyAt = text.match(/\bat\(/g) ?? [];
      const exported = [...text.matchAll(/^export function (\w+)\(/gm)].map((m) => m[1]);
      if (ats.length !== 1 || anyAt.length !== 1) return [`${file}: ${anyAt.length} uses of at(), ${ats.length} of at(local.x) or at(peer.x)`];
      const name = ats[0]![2]!;
      if (exported.length !== 1 || exported[0] !== `${name}Route`) return [`${file}: exports ${exported.join(', ') || 'no function'}, not ${name}Route alone`];
      return [];
    });
    expect(wrong).toEqual([]);
  });

  it('every endpoint of src/api is served by exactly one route file, named after it', async () => {
    const endpoints = await apiEndpoints();
    const servedBy = new Map<string, string[]>();
    for (const { file, text } of routeFiles) {
      for (const m of text.matchAll(/\bat\(((?:local|peer)\.\w+)\)/g)) servedBy.set(m[1]!, [...(servedBy.get(m[1]!) ?? []), file]);
    }
    const expected = [...endpoints].map(([key, area]) => [key, [`${area}/${kebab(key.split('.')[1]!)}.ts`]]);
    expect(Object.fromEntries([...servedBy].sort())).toEqual(Object.fromEntries(expected.sort()));
  });

  it('no other file of src/k8sd builds a route of an endpoint: modules register the builders of routes/', () => {
    const elsewhere = sourceFiles(path.join(SRC, 'k8sd'))
      .filter((f) => !f.startsWith(`${ROUTES}/`))
      .filter((f) => /\bat\((local|peer)\.\w+\)/.test(code(f)))
      .map((f) => path.relative(SRC, f));
    expect(elsewhere).toEqual([]);
  });

  it('each builder gives its endpoint’s method and path, and the cluster API’s auth stays as it was', async () => {
    // Token-authenticated (no member certificate), and control-plane callers only (checked before the body is read).
    const untrusted = ['peer.memberJoin'];
    const controlPlaneCallers = ['peer.caRotationApply', 'peer.caRotationCheck', 'peer.memberLeave'];
    const groups: Record<string, Record<string, unknown>> = { local, peer };
    const seen: Record<string, { untrusted: boolean; controlPlane: boolean }> = {};
    for (const { file, text } of routeFiles) {
      const [, group, name] = /\bat\((local|peer)\.(\w+)\)/.exec(text)!;
      const mod = (await import(path.join(ROUTES, file))) as Record<string, (...args: unknown[]) => Route>;
      // Builders only close over their context: nothing of it is used until a request comes.
      const route = mod[`${name}Route`]!({}, {}, {});
      const endpoint = groups[group!]![name!] as Endpoint<z.ZodType, unknown>;
      expect({ file, method: route.method, path: route.path }).toEqual({ file, method: endpoint.method, path: endpoint.path });
      expect(typeof route.handler).toBe('function');
      expect(route.maxBodyBytes).toBeUndefined();
      seen[`${group}.${name}`] = { untrusted: route.untrusted === true, controlPlane: route.caller === 'control-plane' };
    }
    expect(Object.keys(seen).filter((k) => seen[k]!.untrusted)).toEqual(untrusted);
    expect(Object.keys(seen).filter((k) => seen[k]!.controlPlane).sort()).toEqual(controlPlaneCallers);
  });
});
