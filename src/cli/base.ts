// Shared flags and rendering for every `k8s` command.
import { readFileSync } from 'node:fs';
import { Command, Flags } from '@oclif/core';
import { K8sdClient, K8sdError } from '../client/index.js';
import { tryParseDurationMs } from '../config/duration.js';
import { Layout } from '../layout.js';
import { adviseForInstall, installAdvice } from '../install.js';
import { kebabKeys } from './output-keys.js';

export type OutputFormat = 'plain' | 'json' | 'yaml';

/**
 * A mistake the CLI finds itself. Every error of `k8s` reads the same way: what is wrong (naming
 * the flag or file), then what to do, as "Error: <message>; <what to do>".
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message}; ${hint}` : message);
    this.name = 'CliError';
  }
}

const READ_FAILURES: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a directory', ENOTDIR: 'a part of the path is not a directory' };

/** Reads the file a flag names ("-": stdin); the error names the flag and the file, never a bare ENOENT. */
export function readFlagFile(flag: string, file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const hint = code === 'EACCES' ? 'run as root (sudo), or give a file you can read' : 'give the path of an existing file, or - for stdin';
    throw new CliError(`--${flag}: cannot read "${file}": ${READ_FAILURES[code] ?? (err as Error).message}`, hint);
  }
}

/**
 * A system error that escaped a command (Node's have a syscall, a code and often a path): said in
 * words. oclif's own exit (EEXIT, from this.exit()) has no syscall and is left alone.
 */
export function describeSystemError(err: NodeJS.ErrnoException): string | undefined {
  if (!err.syscall || !err.code || !/^E[A-Z]+$/.test(err.code)) return undefined;
  const what = READ_FAILURES[err.code] ?? err.message;
  return err.path ? `"${err.path}": ${what}; check the path and its permissions (sudo for files of the node)` : `${what}; check the path and its permissions`;
}

export const outputFormatFlag = Flags.string({
  description: 'output format',
  options: ['plain', 'json', 'yaml'],
  default: 'plain',
});

export function timeoutFlagWith(defaultValue: string) {
  return Flags.string({ description: 'how long to wait, e.g. 90s or 5m (minimum 3s)', default: defaultValue });
}
export const timeoutFlag = timeoutFlagWith('90s');

/** The --timeout of a long command in milliseconds (at least 3 s); the error names the flag. */
export function timeoutMsOf(text: string): number {
  return Math.max(3000, parseDuration(text, 'timeout'));
}

/** Parses 90s / 5m / 2h / 1d / 4mo / 1y (and combinations such as 1h30m); the error names the flag. */
export function parseDuration(text: string, flag = 'duration'): number {
  const ms = tryParseDurationMs(text);
  if (ms === undefined) throw new Error(`--${flag}: "${text}" is not a duration; use forms like 90s, 5m, 24h, 30d, 4mo or 1y`);
  return ms;
}

export abstract class K8sCommand extends Command {
  protected layout = new Layout();
  protected client(timeoutMs?: number): K8sdClient {
    return new K8sdClient(this.layout, timeoutMs);
  }

  /**
   * Prints `data` as JSON or YAML with kebab-case keys (src/cli/output-keys.ts), or `plain()` for
   * people. `keys: 'as-is'` is for outputs keyed by Canonical Kubernetes setting names.
   */
  protected async render(data: unknown, format: OutputFormat, plain: () => string, keys: 'kebab' | 'as-is' = 'kebab'): Promise<void> {
    if (format === 'plain') return this.log(plain());
    const shown = keys === 'kebab' ? kebabKeys(data) : data;
    this.log(format === 'json' ? JSON.stringify(shown, null, 2) : (await import('js-yaml')).default.dump(shown).trimEnd());
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof K8sdError || err instanceof CliError || err.name === 'ConfigError') {
      this.logToStderr(`Error: ${adviseForInstall(err.message, installAdvice(this.layout))}`);
      this.exit(1);
    }
    const system = describeSystemError(err as NodeJS.ErrnoException);
    if (system) {
      this.logToStderr(`Error: ${system}`);
      this.exit(1);
    }
    return super.catch(err);
  }
}
