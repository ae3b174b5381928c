// Service argument files: $SNAP_COMMON/args/<service>, one --flag=value per line.
import { existsSync, readFileSync } from 'node:fs';
import { controlCharacterProblem } from '../config/overrides.js';

export type Args = Record<string, string>;
export type ArgOverrides = Record<string, string | null>;

/** Extra args override defaults; a null value deletes the flag. */
export function mergeArgs(defaults: Args, ...overrides: Array<ArgOverrides | undefined>): Args {
  const out: Args = { ...defaults };
  for (const o of overrides) {
    if (!o) continue;
    for (const [flag, value] of Object.entries(o)) {
      const name = flag.replace(/^-+/, '');
      if (value === null) delete out[name];
      else out[name] = value;
    }
  }
  return out;
}

/** A flag or value that would not stay on its own line of an args file. */
export class ArgsFileError extends Error {
  constructor(readonly flag: string, readonly reason: string) {
    super(`refusing to write --${flag}: ${reason}`);
    this.name = 'ArgsFileError';
  }
}

/** One flag per line; a name or value with a newline or another control character is refused, never written. */
export function renderArgsFile(args: Args): string {
  for (const [k, v] of Object.entries(args)) {
    const problem = controlCharacterProblem(k) ?? controlCharacterProblem(v);
    if (problem) throw new ArgsFileError(k, problem);
  }
  return Object.entries(args)
    .map(([k, v]) => `--${k}=${v}`)
    .join('\n') + '\n';
}

export { parseArgsFile, readArgsFile } from '../host/args-file.js';

export function argsToArgv(args: Args): string[] {
  return Object.entries(args).map(([k, v]) => `--${k}=${v}`);
}

/** KEY=value lines of a <service>-env file. */
export function readEnvFile(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(raw);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}
