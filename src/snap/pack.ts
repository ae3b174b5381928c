// `npm run snap`: builds the k8s snap from snapcraft.yaml without snapcraft (no LXD or Multipass
// here). Each part is built the way its snapcraft.yaml entry says: a component part runs its recipe
// (snap/components/<c>/build.sh, whose output is cached by version), the k8s part runs its own
// override-build script in a copy of the source tree (cached by its inputs), a dump part copies its
// source. organize and stage apply as in snapcraft; meta/snap.yaml is written from snapcraft.yaml
// and snap/hooks/* go to meta/hooks/. The tree is packed with mksquashfs using snapd's flags for
// an app snap. Prints the .snap file's path on its last line.
//
// TypeScript rather than a shell script: snapcraft.yaml is YAML (js-yaml), the snap.yaml mapping
// and the organize/stage filters are logic worth unit tests (tests/unit/snap-pack.test.ts).
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import yaml from 'js-yaml';
import { installRoot } from '../layout.js';
import { Part, partBuild, parseSnapcraft, snapYaml, SnapcraftError, staged, organizedPath, buildFor } from './snapcraft.js';

/** snapd's mksquashfs arguments for an app snap (snap/squashfs: everything root-owned, no xattrs). */
export const MKSQUASHFS_FLAGS = ['-noappend', '-comp', 'xz', '-no-fragments', '-no-progress', '-all-root', '-no-xattrs'];

interface Options {
  project: string;
  outDir: string;
  log: (msg: string) => void;
}

interface Entry {
  /** Absolute path of the file in the part's install dir. */
  from: string;
  part: string;
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** Files (and symlinks) under dir, relative, POSIX. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, r));
    else out.push(r);
  }
  return out;
}

function hostArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64el', s390x: 's390x' };
  const arch = map[process.arch];
  if (!arch) throw new SnapcraftError(`no snap architecture for ${process.arch}`);
  return arch;
}

async function requireTool(tool: string): Promise<void> {
  const r = await execa('bash', ['-c', `command -v ${tool}`], { reject: false });
  if (r.exitCode !== 0) throw new SnapcraftError(`${tool} is not installed: install Debian's squashfs-tools (bin/dev-setup does)`);
}

/** A component part: its recipe's cached output is the part's install dir. */
async function recipeInstallDir(project: string, component: string, log: Options['log']): Promise<string> {
  log(`part ${component}: snap/components/${component}/build.sh (cached by version)`);
  const r = await execa('bash', [path.join(project, 'snap', 'components', component, 'build.sh')], { stderr: 'inherit' });
  return path.dirname(r.stdout.trim().split('\n').pop()!);
}

/** Source files of the project as git sees them (tracked and untracked, ignored ones left out). */
async function sourceFiles(project: string, source: string): Promise<string[]> {
  const r = await execa('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', source], { cwd: project });
  return r.stdout.split('\0').filter((f) => f && existsSync(path.join(project, f)) && !lstatSync(path.join(project, f)).isDirectory()).sort();
}

/**
 * A part with its own override-build (the k8s part: npm ci, build, prune): runs the script in a
 * copy of its source, as snapcraft does in the part's build dir. The install dir is cached under a
 * key of the script and every source file's content.
 */
async function scriptInstallDir(project: string, cacheDir: string, name: string, source: string, script: string, log: Options['log']): Promise<string> {
  const files = await sourceFiles(project, source);
  const h = createHash('sha256').update(script);
  for (const f of files) h.update(`${f}\0${sha256(readFileSync(path.join(project, f)))}\0`);
  const key = h.digest('hex').slice(0, 16);
  const partsDir = path.join(cacheDir, 'parts', name);
  const install = path.join(partsDir, key);
  // Older builds of the part are of no further use (a prime tree holds hard links, not paths).
  const prune = (): void => {
    for (const old of readdirSync(partsDir)) if (old !== key && /^[0-9a-f]{16}$/.test(old)) rmSync(path.join(partsDir, old), { recursive: true, force: true });
  };
  if (existsSync(path.join(install, '.complete'))) {
    log(`part ${name}: cached (${key})`);
    prune();
    return install;
  }
  log(`part ${name}: running its override-build in a copy of the source (${files.length} files)`);
  const work = `${install}.tmp.${process.pid}`;
  const build = path.join(work, 'build');
  const partInstall = path.join(work, 'install');
  rmSync(work, { recursive: true, force: true });
  for (const f of files) {
    const to = path.join(build, path.relative(source, f));
    mkdirSync(path.dirname(to), { recursive: true });
    copyFileSync(path.join(project, f), to);
    chmodSync(to, statSync(path.join(project, f)).mode & 0o7777);
  }
  mkdirSync(partInstall, { recursive: true });
  // The pinned Node first on PATH (snapcraft's build-snaps: node/24); npm reads its own cache first.
  const env = {
    PATH: `${path.join(project, 'node_modules', 'node', 'bin')}:${process.env.PATH ?? ''}`,
    SNAPCRAFT_PART_INSTALL: partInstall,
    CRAFT_PART_INSTALL: partInstall,
    SNAPCRAFT_PROJECT_DIR: project,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_loglevel: 'error',
  };
  try {
    await execa('bash', ['-euo', 'pipefail', '-c', script], { cwd: build, env, stdout: process.stderr, stderr: 'inherit' });
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw new SnapcraftError(`parts.${name}.override-build failed: ${(err as Error).message.split('\n')[0]}`);
  }
  writeFileSync(path.join(partInstall, '.complete'), new Date().toISOString());
  rmSync(install, { recursive: true, force: true });
  renameSync(partInstall, install);
  rmSync(work, { recursive: true, force: true });
  prune();
  return install;
}

/** True when two staged files are the same (snapcraft allows identical files from two parts). */
function sameFile(a: string, b: string): boolean {
  const sa = lstatSync(a);
  const sb = lstatSync(b);
  if (sa.isSymbolicLink() || sb.isSymbolicLink()) return sa.isSymbolicLink() && sb.isSymbolicLink() && readlinkSync(a) === readlinkSync(b);
  return sa.size === sb.size && sha256(readFileSync(a)) === sha256(readFileSync(b));
}

/** Puts a file in the prime dir: a hard link where possible (the caches are read-only inputs), else a copy. */
function place(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  const st = lstatSync(from);
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
  else {
    try {
      linkSync(from, to);
    } catch {
      copyFileSync(from, to);
      chmodSync(to, st.mode & 0o7777);
    }
  }
}

/**
 * The key of a prime tree: every path, mode, link target and file content. Content hashes are
 * remembered by (device, inode, size, mtime) in `memoFile`, so the recipe caches (hard-linked in,
 * never rewritten) are read once; a rebuilt part whose output is byte-for-byte the same keeps the key.
 */
function treeKey(prime: string, memoFile: string): string {
  let memo: Record<string, string> = {};
  try {
    memo = JSON.parse(readFileSync(memoFile, 'utf8')) as Record<string, string>;
  } catch {
    // first pack
  }
  const next: Record<string, string> = {};
  const h = createHash('sha256').update(MKSQUASHFS_FLAGS.join(' '));
  for (const rel of walk(prime).sort()) {
    const p = path.join(prime, rel);
    const st = lstatSync(p);
    let content: string;
    if (st.isSymbolicLink()) content = `-> ${readlinkSync(p)}`;
    else {
      const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      content = memo[id] ?? sha256(readFileSync(p));
      next[id] = content;
    }
    h.update(`${rel}\0${st.mode}\0${content}\0`);
  }
  writeFileSync(memoFile, JSON.stringify(next));
  return h.digest('hex');
}

export async function pack(opts: Options): Promise<string> {
  const { project, outDir, log } = opts;
  await requireTool('mksquashfs');
  const file = path.join(project, 'snapcraft.yaml');
  const sc = parseSnapcraft(yaml.load(readFileSync(file, 'utf8')), 'snapcraft.yaml');
  const arch = buildFor(sc, hostArch());

  const installs = new Map<string, string>();
  let version = sc.version === undefined ? undefined : String(sc.version);
  for (const [name, part] of Object.entries(sc.parts)) {
    const b = partBuild(name, part);
    let dir: string;
    if (b.kind === 'recipe') {
      dir = await recipeInstallDir(project, b.component, log);
      if (name === sc['adopt-info']) {
        if (!b.versionFile) throw new SnapcraftError(`parts.${name}: adopt-info names it but its override-build sets no version`);
        version = readFileSync(path.join(dir, b.versionFile), 'utf8').trim();
      }
    } else if (b.kind === 'dump') {
      dir = path.join(project, b.source);
    } else {
      dir = await scriptInstallDir(project, outDir, name, b.source, b.script, log);
    }
    installs.set(name, dir);
  }
  if (!version) throw new SnapcraftError('no version: set version or adopt-info in snapcraft.yaml');

  // Stage: organize, then the stage filter; a path two parts stage differently is an error.
  const tree = new Map<string, Entry>();
  for (const [name, dir] of installs) {
    const part: Part = sc.parts[name];
    for (const rel of walk(dir)) {
      if (rel === '.complete' && partBuild(name, part).kind === 'script') continue; // our cache stamp
      const dest = organizedPath(rel, part.organize);
      if (!staged(dest, part.stage) || !staged(dest, part.prime)) continue;
      const from = path.join(dir, rel);
      const had = tree.get(dest);
      if (had && !sameFile(had.from, from)) throw new SnapcraftError(`parts ${had.part} and ${name} both stage ${dest} with different contents`);
      tree.set(dest, { from, part: name });
    }
  }

  mkdirSync(outDir, { recursive: true });
  const prime = path.join(outDir, 'prime');
  rmSync(prime, { recursive: true, force: true });
  for (const [rel, e] of tree) place(e.from, path.join(prime, rel));

  const meta = snapYaml(sc, { arch, version });
  for (const [app, def] of Object.entries(meta.apps as Record<string, { command: string }>)) {
    const cmd = def.command.split(/\s+/)[0];
    if (!existsSync(path.join(prime, cmd))) throw new SnapcraftError(`apps.${app}.command: ${cmd} is not in the snap`);
  }
  mkdirSync(path.join(prime, 'meta', 'hooks'), { recursive: true });
  writeFileSync(path.join(prime, 'meta', 'snap.yaml'), yaml.dump(meta, { lineWidth: -1, noRefs: true }));
  const hooksDir = path.join(project, 'snap', 'hooks');
  for (const hook of existsSync(hooksDir) ? readdirSync(hooksDir).sort() : []) {
    const src = path.join(hooksDir, hook);
    if (!(statSync(src).mode & 0o111)) throw new SnapcraftError(`snap/hooks/${hook} is not executable; chmod +x it`);
    copyFileSync(src, path.join(prime, 'meta', 'hooks', hook));
    chmodSync(path.join(prime, 'meta', 'hooks', hook), 0o755);
  }

  const out = path.join(outDir, `${sc.name}_${version}_${arch}.snap`);
  const key = treeKey(prime, path.join(outDir, 'content-hashes.json'));
  const keyFile = `${out}.inputs`;
  if (existsSync(out) && existsSync(keyFile) && readFileSync(keyFile, 'utf8').trim() === key) {
    log(`${path.basename(out)} is up to date (same inputs)`);
    return out;
  }
  log(`mksquashfs ${MKSQUASHFS_FLAGS.join(' ')}`);
  const tmp = `${out}.tmp.${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    await execa('mksquashfs', [prime, tmp, ...MKSQUASHFS_FLAGS], { stdout: process.stderr, stderr: 'inherit' });
    renameSync(tmp, out);
  } finally {
    rmSync(tmp, { force: true });
  }
  writeFileSync(keyFile, `${key}\n`);
  return out;
}

export function defaultOutDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.K8S_SNAP_OUT || path.join(env.XDG_CACHE_HOME || path.join(env.HOME || homedir(), '.cache'), 'k8s-ts', 'snap');
}

export async function main(): Promise<void> {
  const started = Date.now();
  const log = (m: string): void => void process.stderr.write(`snap: [${((Date.now() - started) / 1000).toFixed(0)}s] ${m}\n`);
  try {
    const out = await pack({ project: installRoot, outDir: defaultOutDir(), log });
    log(`${(statSync(out).size / 2 ** 20).toFixed(1)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    process.stdout.write(`${out}\n`);
  } catch (err) {
    if (err instanceof SnapcraftError) {
      process.stderr.write(`snap: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
