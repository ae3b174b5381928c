// Writes the Juju-facing files of a .charm from its charmcraft.yaml: metadata.yaml,
// config.yaml, actions.yaml and manifest.yaml (the bases it runs on, for one architecture).
// Used by charms/pack.sh:  node charm-files.js <charmcraft.yaml> <stage dir> <arch>
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { isJsonObject } from '../json.js';
import { loadCharmMeta, renderJujuMetadataFiles, type CharmMeta } from '../metadata.js';

export interface Base {
  readonly name: string;
  readonly channel: string;
  readonly architectures: readonly string[];
}

/** The bases of a platforms-style charmcraft.yaml ('ubuntu@24.04:amd64') built for one architecture. */
export function basesFor(meta: CharmMeta, arch: string): Base[] {
  const platforms = meta.raw.platforms;
  if (!isJsonObject(platforms)) return [];
  const bases: Base[] = [];
  for (const platform of Object.keys(platforms)) {
    const match = /^([a-z]+)@([0-9.]+):([a-z0-9]+)$/.exec(platform);
    if (!match || match[3] !== arch || match[1] === undefined || match[2] === undefined) continue;
    bases.push({ name: match[1], channel: match[2], architectures: [arch] });
  }
  return bases;
}

export function renderManifest(meta: CharmMeta, arch: string, now: Date): string {
  const bases = basesFor(meta, arch);
  if (bases.length === 0) throw new Error(`${meta.name} declares no platform for ${arch}; add 'ubuntu@24.04:${arch}' to platforms`);
  return yaml.dump({
    'charmcraft-version': 'charms/pack.sh',
    'charmcraft-started-at': now.toISOString(),
    bases: bases.map((base) => ({ ...base, architectures: [...base.architectures] })),
  });
}

export function writeCharmFiles(charmcraftPath: string, stageDir: string, arch: string): void {
  const meta = loadCharmMeta(charmcraftPath);
  for (const [file, text] of Object.entries(renderJujuMetadataFiles(meta))) writeFileSync(path.join(stageDir, file), text);
  writeFileSync(path.join(stageDir, 'manifest.yaml'), renderManifest(meta, arch, new Date()));
}

const [charmcraftPath, stageDir, arch] = process.argv.slice(2);
if (process.argv[1]?.endsWith('charm-files.js') && charmcraftPath && stageDir && arch) {
  writeCharmFiles(charmcraftPath, stageDir, arch);
}
