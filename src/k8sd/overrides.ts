// The overrides of a node's bootstrap or join file, as k8sd applies them: extra config files under
// conf.d, and a record of the security-critical flags the operator accepted weakening (read back by
// `k8s status`, the CIS run and k8sd's start-up warning).
import { existsSync, readFileSync } from 'node:fs';
import type { WeakenedFlag } from '../config/overrides.js';
import type { FileSpec } from '../host/files.js';
import type { Layout } from '../layout.js';
import type { Logger } from '../log.js';

/** The files the overrides add to a flow's file set (committed and rolled back with the rest). */
export function overrideFiles(layout: Layout, weakened: readonly WeakenedFlag[], configFiles: Readonly<Record<string, string>>): FileSpec[] {
  const files: FileSpec[] = Object.entries(configFiles).map(([name, content]) => ({ path: layout.conf(name), content, mode: 0o600 }));
  if (weakened.length) files.push({ path: layout.acceptedInsecureArgsFile, content: JSON.stringify({ weakened }, null, 2) + '\n', mode: 0o600 });
  return files;
}

/** The accepted weakened flags this node runs with (empty when none, or when the record is unreadable). */
export function readWeakenedFlags(layout: Layout): WeakenedFlag[] {
  const file = layout.acceptedInsecureArgsFile;
  if (!existsSync(file)) return [];
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { weakened?: WeakenedFlag[] };
    return Array.isArray(doc.weakened) ? doc.weakened : [];
  } catch {
    return [];
  }
}

/** One warning per weakened flag: logged when a flow applies them and each time k8sd starts. */
export function warnWeakenedFlags(log: Logger, weakened: readonly WeakenedFlag[], when: string): void {
  for (const w of weakened) {
    log.warn(`security default weakened by the operator: ${w.service} --${w.flag}${w.value === null ? ' removed' : `=${w.value}`}`, {
      event: 'insecure-override',
      when,
      component: w.service,
      flag: w.flag,
      value: w.value,
    });
  }
}
