// `k8s` speaks with one voice (issue 14 item 5): errors say what is wrong, then what to do; a file
// flag names itself and the file; long commands take --timeout; mistyped commands get a suggestion;
// shell completion for bash, zsh, fish and powershell.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { Errors } from '@oclif/core';
import { describe, expect, it } from 'vitest';
import { CliError, describeSystemError, readFlagFile, timeoutMsOf } from '../../src/cli/base.js';
import { completionScript, SHELLS } from '../../src/cli/completion.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A command as oclif discovers it: the default export of src/cli/commands/<id>.ts. */
async function command(id: string): Promise<{ flags?: Record<string, unknown> }> {
  const file = path.join(ROOT, 'src/cli/commands', `${id}.ts`);
  return ((await import(/* @vite-ignore */ file)) as { default: { flags?: Record<string, unknown> } }).default;
}

describe('file flags', () => {
  it('name the flag and the file instead of a bare ENOENT, then say what to do', () => {
    const missing = path.join(os.tmpdir(), 'k8s-no-such-file.yaml');
    let err: unknown;
    try {
      readFlagFile('file', missing);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as Error).message).toBe(`--file: cannot read "${missing}": no such file; give the path of an existing file, or - for stdin`);
    expect((err as Error).message).not.toMatch(/ENOENT/);
  });

  it('read the file when it is there', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'k8s-cli-'));
    try {
      writeFileSync(path.join(dir, 'b.yaml'), 'pod-cidr: 10.1.0.0/16\n');
      expect(readFlagFile('file', path.join(dir, 'b.yaml'))).toBe('pod-cidr: 10.1.0.0/16\n');
      expect(() => readFlagFile('external-certificates', dir)).toThrow(/--external-certificates: cannot read ".*": it is a directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a system error that escapes a command is said in words, with the path', () => {
    const err = Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), { code: 'ENOENT', syscall: 'open', path: '/x' });
    expect(describeSystemError(err)).toBe('"/x": no such file; check the path and its permissions (sudo for files of the node)');
    expect(describeSystemError(new Error('plain'))).toBeUndefined();
    // this.exit(0) throws oclif's ExitError (code EEXIT): an exit, not a failure.
    expect(describeSystemError(new Errors.ExitError(0))).toBeUndefined();
  });
});

describe('long commands', () => {
  it.each(['bootstrap', 'join-cluster', 'remove-node', 'refresh-certs', 'rotate-certs-ca', 'secrets-encryption', 'snapshot', 'status'] as const)('%s takes --timeout', async (id) => {
    expect(Object.keys((await command(id)).flags ?? {})).toContain('timeout');
  });

  it('--timeout errors name the flag; the floor is 3 s', () => {
    expect(() => timeoutMsOf('soon')).toThrow(/--timeout: "soon" is not a duration/);
    expect(timeoutMsOf('1s')).toBe(3000);
    expect(timeoutMsOf('10m')).toBe(600_000);
  });
});

describe('mistyped commands', () => {
  it('get a "did you mean" from @oclif/plugin-not-found', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { oclif: { plugins: string[] }; dependencies: Record<string, string> };
    expect(pkg.oclif.plugins).toContain('@oclif/plugin-not-found');
    expect(pkg.dependencies['@oclif/plugin-not-found']).toBeDefined();
  });
});

describe('k8s completion', () => {
  const commands = [
    { id: 'bootstrap', description: 'Bootstrap a new Kubernetes cluster on this node. More.', flags: [{ name: 'file', description: "bootstrap configuration YAML file, or - for stdin (it's [optional])" }] },
    { id: 'status', description: 'Show the state of the cluster', flags: [{ name: 'wait-ready', description: 'wait until ready' }] },
  ];

  it('offers the four shells CK8s names', async () => {
    expect(SHELLS).toEqual(['bash', 'zsh', 'fish', 'powershell']);
    expect(await command('completion')).toBeDefined();
  });

  it('bash: a script bash accepts that completes commands and their flags', () => {
    const script = completionScript('bash', 'k8s', commands);
    execFileSync('bash', ['-n'], { input: script });
    const complete = (words: string[]): string =>
      execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `"${w}"`).join(' ')}); COMP_CWORD=${words.length - 1}; _k8s_complete; echo "\${COMPREPLY[@]}"`]).toString().trim();
    expect(complete(['k8s', 'st'])).toBe('status');
    expect(complete(['k8s', 'bootstrap', '--f'])).toBe('--file');
  });

  it('zsh, fish and powershell: every command and flag, quotes kept out of descriptions', () => {
    for (const shell of ['zsh', 'fish', 'powershell'] as const) {
      const script = completionScript(shell, 'k8s', commands);
      expect(script).toContain('bootstrap');
      expect(script).toContain('wait-ready');
    }
    expect(completionScript('zsh', 'k8s', commands)).toContain("'bootstrap:Bootstrap a new Kubernetes cluster on this node.'");
    expect(completionScript('fish', 'k8s', commands)).toContain("-l file -d 'bootstrap configuration YAML file, or - for stdin (its optional)'");
  });
});

describe('the built entry points (bin/, after bin/dev-setup)', () => {
  const run = (bin: string, args: string[]): { status: number; stdout: string; stderr: string } => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'k8s-bin-'));
    try {
      const r = spawnSync(path.join(ROOT, 'bin', bin), args, { env: { ...process.env, K8S_ROOT: root }, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      // CI=true makes oclif colour its output even into a pipe: the checks are about the words.
      return { status: r.status ?? -1, stdout: stripVTControlCharacters(r.stdout), stderr: stripVTControlCharacters(r.stderr) };
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };

  it('k8sd --help prints its usage and exits 0 instead of starting the daemon', () => {
    const r = run('k8sd', ['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^k8sd: the k8s node daemon/);
    expect(r.stdout).toContain('USAGE');
  });

  it('k8s completion bash prints a script bash accepts', () => {
    const r = run('k8s', ['completion', 'bash']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('complete -o default -F _k8s_complete k8s');
    execFileSync('bash', ['-n'], { input: r.stdout });
  });

  it('a mistyped command is named, with where to look (exit 127)', () => {
    const r = run('k8s', ['statsu']);
    expect(r.status).toBe(127);
    expect(r.stderr).toContain('statsu is not a k8s command');
  });
});
