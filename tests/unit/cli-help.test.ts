// `k8s <command> --help` at 80 columns, rendered by oclif from the command classes in src/cli/commands.
// oclif wraps each line of a description on its own: a paragraph written with hard line breaks comes
// out ragged (a full line, then a stub of two words, then a full line). Paragraphs are therefore one
// line each in the source, and this test fails on the ragged pattern and on lines oclif cannot wrap.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { Command, Config, Help, Interfaces } from '@oclif/core';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WIDTH = 80;
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { oclif: { commands: { globPatterns: string[] } } };
const excluded = pkg.oclif.commands.globPatterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\.js$/, '.ts'));
const commandFiles = readdirSync(path.join(ROOT, 'src/cli/commands')).filter((f) => f.endsWith('.ts') && !excluded.includes(f));

// oclif's own step from a command class to what its help reads (the manifest entry). It is not in
// @oclif/core's package exports, so it is loaded by path: the help is then rendered from src/, not
// from a dist/ that may be stale.
const { cacheCommand } = createRequire(import.meta.url)(path.join(ROOT, 'node_modules/@oclif/core/lib/util/cache-command.js')) as {
  cacheCommand: (cmd: Command.Class) => Promise<Command.Cached>;
};

class HelpAt80 extends Help {
  /** What `k8s <command> --help` prints: the summary line, then the sections. */
  page(command: Command.Cached): string {
    const loadable = { ...command, load: async () => { throw new Error('not run'); } } as Command.Loadable;
    return stripVTControlCharacters(`${this.summary(loadable)}\n\n${this.formatCommand(loadable)}`);
  }

  /** What `k8s --help` prints: the root sections, then the commands with their summaries. */
  rootPage(commands: Command.Cached[]): string {
    const loadable = commands.map((c) => ({ ...c, load: async () => { throw new Error('not run'); } }) as Command.Loadable);
    return stripVTControlCharacters(`${this.formatRoot()}\n\n${this.formatCommands(loadable)}`);
  }
}

/** The sections of a help page, by header ('' for the summary above the first header). */
function sections(page: string): Map<string, string[]> {
  const out = new Map<string, string[]>([['', []]]);
  let current = '';
  for (const line of page.split('\n')) {
    if (/^[A-Z][A-Z ]+$/.test(line)) out.set((current = line), []);
    else out.get(current)!.push(line);
  }
  return out;
}

/**
 * Lines of prose that were broken although the next word would have fitted: a paragraph written
 * with hard line breaks that oclif re-wrapped. Lists (items starting "- ", "* ", "1. "), shell
 * commands ("$ ") and shell continuations (" \") are lines on purpose and are left alone.
 */
function raggedLines(lines: string[], width: number): string[] {
  const found: string[] = [];
  const indent = (l: string): number => l.length - l.trimStart().length;
  const deliberateBreak = (l: string): boolean => /^(- |\* |\d+\. |\$ )/.test(l.trimStart());
  for (let i = 0; i + 1 < lines.length; i++) {
    const [line, next] = [lines[i], lines[i + 1]];
    if (!line.trim() || !next.trim() || indent(line) !== indent(next) || line.endsWith(' \\') || deliberateBreak(next)) continue;
    const nextWord = next.trimStart().split(' ')[0];
    if (line.length + 1 + nextWord.length <= width) found.push(`${line.trim()} ⏎ ${next.trim()}`);
  }
  return found;
}

describe(`k8s help at ${WIDTH} columns`, () => {
  let help: HelpAt80;
  const pages = new Map<string, string>();

  beforeAll(async () => {
    const config = await Config.load(ROOT);
    help = new HelpAt80(config, { maxWidth: WIDTH } as Partial<Interfaces.HelpOptions>);
    const cached: Command.Cached[] = [];
    for (const file of commandFiles) {
      const cls = ((await import(/* @vite-ignore */ path.join(ROOT, 'src/cli/commands', file))) as { default: Command.Class }).default;
      cls.id = file.replace(/\.ts$/, '');
      cached.push(await cacheCommand(cls));
      pages.set(cls.id, help.page(cached.at(-1)!));
    }
    pages.set('(root)', help.rootPage(cached.filter((c) => !c.hidden)));
  });

  it('renders every command', () => {
    expect(pages.size).toBe(commandFiles.length + 1);
    expect(pages.get('get-join-token')).toContain('EXAMPLES');
    expect(pages.get('(root)')).toContain('get-join-token');
  });

  it('the check finds a paragraph written with hard line breaks, and passes one oclif wrapped itself', () => {
    const hardBroken = ['  The token names the node it is for (for workers the name is optional),', '  expires, and can be', '  used once. It carries the addresses and certificate fingerprints of the'];
    expect(raggedLines(hardBroken, WIDTH)).toEqual(['expires, and can be ⏎ used once. It carries the addresses and certificate fingerprints of the']);
    const wrapped = ['  The token names the node it is for (for workers the name is optional),', '  expires, and can be used once. It carries the addresses and certificate', '  fingerprints.'];
    expect(raggedLines(wrapped, WIDTH)).toEqual([]);
    expect(raggedLines(['  Steps:', '  - one', '  - two'], WIDTH)).toEqual([]);
  });

  it('no description or example is re-wrapped into ragged lines', () => {
    const ragged = [...pages].flatMap(([id, page]) => {
      const s = sections(page);
      return [...(s.get('DESCRIPTION') ?? []), ...(s.get('EXAMPLES') ?? [])].length
        ? raggedLines([...(s.get('DESCRIPTION') ?? []), '', ...(s.get('EXAMPLES') ?? [])], WIDTH).map((r) => `${id}: ${r}`)
        : [];
    });
    expect(ragged).toEqual([]);
  });

  it('no line is wider than the terminal (oclif prints the summary and plain examples unwrapped)', () => {
    const wide = [...pages].flatMap(([id, page]) => page.split('\n').filter((l) => l.length > WIDTH).map((l) => `${id}: ${l}`));
    expect(wide).toEqual([]);
  });

  it('every command has a one-line summary and at least one example', () => {
    for (const [id, page] of [...pages].filter(([p]) => p !== '(root)')) {
      expect(sections(page).get('')!.filter(Boolean), id).toHaveLength(1);
      expect(page, id).toContain('EXAMPLES');
    }
  });

  it('examples read as shell commands: each starts with the prompt', () => {
    const bare = [...pages].flatMap(([id, page]) =>
      (sections(page).get('EXAMPLES') ?? []).filter((l) => /^ {2}\S/.test(l) && !l.startsWith('  $ ') && !/^ {2}\S.*:$/.test(l)).map((l) => `${id}: ${l}`),
    );
    expect(bare).toEqual([]);
  });
});
