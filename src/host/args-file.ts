// Reading a service's args file ($SNAP_COMMON/args/<service>, one --flag=value per line). Writing
// it, with the checks that keep each flag on its own line, is services/args.ts's business.
import { existsSync, readFileSync } from 'node:fs';

export function parseArgsFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^--([^=\s]+)(?:=(.*))?$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? 'true';
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out[m[1]!] = value;
  }
  return out;
}

export function readArgsFile(file: string): Record<string, string> {
  return existsSync(file) ? parseArgsFile(readFileSync(file, 'utf8')) : {};
}
