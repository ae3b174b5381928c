import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from '@oclif/core';
import { describe, expect, it } from 'vitest';

// oclif finds the commands by pattern (package.json oclif.commands) and, once built, reads them from
// oclif.manifest.json (src/cli/manifest.ts), so `k8s <command>` loads only that command's module.
const root = path.resolve(import.meta.dirname, '../..');
const discovery = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).oclif.commands as { strategy: string; target: string; globPatterns: string[] };
const commandsDir = path.join(root, 'src/cli/commands');
const excluded = discovery.globPatterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\.js$/, '.ts'));

describe('command discovery for the oclif manifest', () => {
  it('finds the commands by pattern in the compiled commands directory', () => {
    expect(discovery.strategy).toBe('pattern');
    expect(discovery.target).toBe('./dist/cli/commands');
  });

  it('every module in src/cli/commands is a command, except the helpers excluded by name', async () => {
    const files = readdirSync(commandsDir).filter((f) => f.endsWith('.ts'));
    for (const helper of excluded) expect(files, `${helper} is excluded but does not exist`).toContain(helper);
    for (const f of files.filter((x) => !excluded.includes(x))) {
      const mod = (await import(path.join(commandsDir, f))) as { default?: unknown };
      const cls = mod.default as (typeof Command) | undefined;
      expect(typeof cls === 'function' && cls.prototype instanceof Command, `${f} must default-export a command (or be excluded in package.json oclif.commands.globPatterns)`).toBe(true);
    }
  });
});
