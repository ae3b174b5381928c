// A fake component build cache for unit tests: files written where the Layout looks for them,
// with their SHA-256 recorded by the recipes' own helper (snap/components/lib.sh record_checksums).
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execaSync } from 'execa';
import type { Layout } from '../../src/layout.js';

export const LIB_SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../snap/components/lib.sh');

/** Runs lib.sh's record_checksums on a cache entry (the directory above bin/), as a recipe does. */
export function recordChecksums(entry: string): void {
  execaSync('bash', ['-c', 'source "$1" && record_checksums "$2" && stamp_done "$2"', '_', LIB_SH, entry]);
}

/** Writes an executable component file into the cache and records the entry's checksums. */
export function installComponent(layout: Layout, component: string, binary: string, content: string): string {
  const file = layout.componentBinary(component, binary);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  chmodSync(file, 0o755);
  recordChecksums(path.dirname(path.dirname(file)));
  return file;
}
