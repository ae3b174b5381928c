// Build step (npm run build, bin/dev-setup, the snap's k8s part): writes oclif.manifest.json, the
// flags, args and help of every command. With it, `k8s <command>` imports only that command's module
// (oclif's pattern discovery with a manifest) instead of every command's, and oclif builds no
// command cache at start-up: issue 17, `k8s status` in at most 150 ms.
//
// Usage: node dist/cli/manifest.js [project root]   (default: the root above dist/)
import { Plugin } from '@oclif/core';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export class ManifestError extends Error {
  override name = 'ManifestError';
}

export const MANIFEST_FILE = 'oclif.manifest.json';

export async function writeManifest(root: string): Promise<string[]> {
  const file = path.join(root, MANIFEST_FILE);
  // oclif would read a stale manifest instead of the commands.
  rmSync(file, { force: true });
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarning);
  const plugin = new Plugin({ root, isRoot: true, type: 'core' });
  try {
    await plugin.load();
    await nextTurn(); // process.emitWarning reports on the next turn
  } finally {
    process.off('warning', onWarning);
  }
  if (warnings.length) throw new ManifestError(`oclif could not load every command under ${root}: ${warnings.join('; ')}; a helper module in src/cli/commands must be excluded in package.json oclif.commands.globPatterns`);
  const ids = Object.keys(plugin.manifest.commands);
  if (!ids.length) throw new ManifestError(`oclif found no command under ${root}; run tsc first`);
  const tmp = `${file}.tmp.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(plugin.manifest, null, 1) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
  return ids;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '../..'));
  try {
    const ids = await writeManifest(root);
    process.stderr.write(`${MANIFEST_FILE}: ${ids.length} commands\n`);
  } catch (err) {
    process.stderr.write(`manifest: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
