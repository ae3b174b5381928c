// The layering rules of issue 14, read from the code's own imports (static, type-only and dynamic).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Files under src/ that `file` imports, as paths relative to src/ (packages are left out). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => path.relative(SRC, path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'))));
}

const GRAPH = new Map(sourceFiles(SRC).map((f) => [path.relative(SRC, f), importsOf(f)]));
const under = (dir: string) => (file: string): boolean => file.startsWith(`${dir}/`);

/** Whether every import of `dep` in `file` is `import type` (erased: nothing loads at run time). */
function typeOnly(file: string, dep: string): boolean {
  const text = readFileSync(path.join(SRC, file), 'utf8');
  const spec = path.relative(path.dirname(path.join(SRC, file)), path.join(SRC, dep)).replace(/\.ts$/, '.js');
  const rel = spec.startsWith('.') ? spec : `./${spec}`;
  const lines = text.split('\n').filter((l) => l.includes(`'${rel}'`));
  return lines.length > 0 && lines.every((l) => /^(import|export) type /.test(l.trim()));
}

function violations(from: (f: string) => boolean, to: (f: string) => boolean): string[] {
  return [...GRAPH].flatMap(([file, deps]) => (from(file) ? deps.filter(to).map((d) => `${file} -> ${d}`) : []));
}

/** Files under `dir` that reach themselves through the imports (static, type-only and dynamic). */
function cycleMembers(dir: string): string[] {
  const inDir = under(dir);
  // Tarjan's strongly connected components over the files of `dir`.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const members: string[] = [];
  const visit = (f: string): void => {
    index.set(f, index.size);
    low.set(f, index.get(f)!);
    stack.push(f);
    onStack.add(f);
    for (const d of (GRAPH.get(f) ?? []).filter(inDir)) {
      if (!index.has(d)) {
        visit(d);
        low.set(f, Math.min(low.get(f)!, low.get(d)!));
      } else if (onStack.has(d)) low.set(f, Math.min(low.get(f)!, index.get(d)!));
    }
    if (low.get(f) !== index.get(f)) return;
    const component: string[] = [];
    let top: string;
    do {
      top = stack.pop()!;
      onStack.delete(top);
      component.push(top);
    } while (top !== f);
    if (component.length > 1 || (GRAPH.get(f) ?? []).includes(f)) members.push(...component);
  };
  for (const f of GRAPH.keys()) if (inDir(f) && !index.has(f)) visit(f);
  return members.sort();
}

describe('import rules', () => {
  it('finds the imports it checks', () => {
    expect(GRAPH.get('k8sd/main.ts')).toContain('k8sd/daemon.ts');
    expect(GRAPH.size).toBeGreaterThan(100);
  });

  it('src/cli and src/client import nothing from src/k8sd (they speak to it through src/api)', () => {
    expect(violations((f) => under('cli')(f) || under('client')(f), under('k8sd'))).toEqual([]);
  });

  it('src/api imports nothing from the daemon, the CLI or the client', () => {
    expect(violations(under('api'), (d) => under('k8sd')(d) || under('cli')(d) || under('client')(d))).toEqual([]);
  });

  it('the CLI and the client never load zod: only src/api/parse.ts (the daemon side) imports it at run time', () => {
    // Every `k8s` command pays for what it loads; zod costs ~45 ms of CPU (issue 17).
    const clientSide = (f: string): boolean => under('cli')(f) || under('client')(f) || (under('api')(f) && f !== 'api/parse.ts');
    const reachable = new Set<string>();
    const visit = (f: string): void => {
      if (reachable.has(f)) return;
      reachable.add(f);
      for (const d of GRAPH.get(f) ?? []) if (!typeOnly(f, d)) visit(d);
    };
    for (const f of GRAPH.keys()) if (under('client')(f) || f === 'cli/commands/status.ts') visit(f);
    expect([...reachable].filter((f) => f === 'api/parse.ts')).toEqual([]);
    const zodAtRunTime = [...GRAPH.keys()].filter((f) => clientSide(f) && /^import (?!type )[^;]*from 'zod';/m.test(readFileSync(path.join(SRC, f), 'utf8')));
    expect(zodAtRunTime).toEqual([]);
  });

  it('k8sd loads @kubernetes/client-node at run time only through k8sd/kube-api.ts', () => {
    // A dynamic import of the package asks for all of it, and k8sd's bundle would keep every one of
    // its generated API groups (~20 MB more source in memory, src/snap/bundle-k8sd.ts).
    const atRunTime = [...GRAPH.keys()].filter((f) => {
      const text = readFileSync(path.join(SRC, f), 'utf8');
      return /import\('@kubernetes\/client-node'\)|^(import|export) (?!type )[^;]*from '@kubernetes\/client-node';/m.test(text);
    });
    expect(atRunTime).toEqual(['k8sd/kube-api.ts']);
  });

  it('host/ imports nothing from services/ (services are built on the host, not the other way)', () => {
    expect(violations(under('host'), under('services'))).toEqual([]);
  });

  it('no module of src/k8sd imports daemon.ts but the composition root (main.ts): modules take a narrow node context', () => {
    const importers = [...GRAPH].filter(([, deps]) => deps.includes('k8sd/daemon.ts')).map(([f]) => f);
    expect(importers).toEqual(['k8sd/main.ts']);
  });

  it("no module assigns the node's datastore: only daemon.ts sets etcd and state (adoptDatastore, forgetDatastore)", () => {
    const assigns = [...GRAPH.keys()]
      .filter((f) => under('k8sd')(f) && f !== 'k8sd/daemon.ts')
      .filter((f) => /\b(?:d|m\.d|this\.d|node)\.(?:etcd|state)\s*=(?!=)/.test(readFileSync(path.join(SRC, f), 'utf8')));
    expect(assigns).toEqual([]);
  });

  it('src/k8sd has no import cycle, type-only imports included: it reads as a tree', () => {
    expect(cycleMembers('k8sd')).toEqual([]);
  });

  it('finds a cycle where there is one', () => {
    GRAPH.set('k8sd/cycle-probe-a.ts', ['k8sd/cycle-probe-b.ts']);
    GRAPH.set('k8sd/cycle-probe-b.ts', ['k8sd/cycle-probe-a.ts']);
    try {
      expect(cycleMembers('k8sd')).toEqual(expect.arrayContaining(['k8sd/cycle-probe-a.ts', 'k8sd/cycle-probe-b.ts']));
    } finally {
      GRAPH.delete('k8sd/cycle-probe-a.ts');
      GRAPH.delete('k8sd/cycle-probe-b.ts');
    }
  });
});
