// What `snapcraft pack` does with snapcraft.yaml, for the parts of it this project uses: the
// snapcraft.yaml model, the snap.yaml it turns into, and the organize/stage filters that decide
// which of a part's files land in the snap. Pure functions; src/snap/pack.ts drives them.
import path from 'node:path';
import { z } from 'zod';

export class SnapcraftError extends Error {
  override name = 'SnapcraftError';
}

const stringList = z.array(z.string());

/** The app keys snap.yaml carries over from snapcraft.yaml (snapcraft's SnapApp model), in its order. */
export const SNAP_APP_KEYS = [
  'command', 'autostart', 'common-id', 'bus-name', 'completer', 'stop-command', 'post-stop-command', 'start-timeout',
  'stop-timeout', 'watchdog-timeout', 'reload-command', 'restart-delay', 'timer', 'daemon', 'after', 'before',
  'refresh-mode', 'stop-mode', 'restart-condition', 'install-mode', 'plugs', 'slots', 'aliases', 'environment',
  'command-chain', 'sockets', 'daemon-scope', 'activates-on',
] as const;

const appSchema = z
  .object({
    command: z.string().min(1),
    daemon: z.enum(['simple', 'forking', 'oneshot', 'notify', 'dbus']).optional(),
    'install-mode': z.enum(['enable', 'disable']).optional(),
    after: stringList.optional(),
    before: stringList.optional(),
    'command-chain': stringList.optional(),
    passthrough: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

const partSchema = z
  .object({
    plugin: z.string(),
    source: z.string().optional(),
    'override-build': z.string().optional(),
    organize: z.record(z.string(), z.string()).optional(),
    stage: stringList.optional(),
    prime: stringList.optional(),
  })
  .passthrough();

const snapcraftSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9](?:-?[a-z0-9])*$/, 'a snap name: lower-case letters, digits and single hyphens'),
    title: z.string().optional(),
    version: z.union([z.string(), z.number()]).optional(),
    'adopt-info': z.string().optional(),
    summary: z.string().max(78),
    description: z.string(),
    license: z.string().optional(),
    type: z.string().optional(),
    base: z.string(),
    'build-base': z.string().optional(),
    grade: z.enum(['stable', 'devel']).optional(),
    confinement: z.enum(['classic', 'strict', 'devmode']),
    epoch: z.union([z.string(), z.number()]).optional(),
    assumes: stringList.optional(),
    architectures: z.array(z.object({ 'build-on': z.union([z.string(), stringList]), 'build-for': z.union([z.string(), stringList]).optional() })).optional(),
    environment: z.record(z.string(), z.string().nullable()).optional(),
    apps: z.record(z.string(), appSchema).optional(),
    hooks: z.record(z.string(), z.unknown()).optional(),
    plugs: z.record(z.string(), z.unknown()).optional(),
    slots: z.record(z.string(), z.unknown()).optional(),
    layout: z.record(z.string(), z.unknown()).optional(),
    'system-usernames': z.record(z.string(), z.unknown()).optional(),
    contact: z.union([z.string(), stringList]).optional(),
    donation: z.union([z.string(), stringList]).optional(),
    issues: z.union([z.string(), stringList]).optional(),
    'source-code': z.union([z.string(), stringList]).optional(),
    website: z.union([z.string(), stringList]).optional(),
    passthrough: z.record(z.string(), z.unknown()).optional(),
    parts: z.record(z.string(), partSchema),
  })
  .passthrough();

export type Snapcraft = z.infer<typeof snapcraftSchema>;
export type Part = z.infer<typeof partSchema>;
export type SnapYaml = Record<string, unknown>;

/** Parses a loaded snapcraft.yaml; an error names the key that is wrong. */
export function parseSnapcraft(doc: unknown, file = 'snapcraft.yaml'): Snapcraft {
  const r = snapcraftSchema.safeParse(doc);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new SnapcraftError(`${file} is not valid: ${issues.join('; ')}`);
  }
  return r.data;
}

/** Snap versions as snapd accepts them (snap/validate.go). */
const VERSION_RE = /^[a-zA-Z0-9](?:[a-zA-Z0-9:.+~-]{0,30}[a-zA-Z0-9+~])?$/;

const asList = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

/** The architecture a snap built on `hostArch` is for (core22 `architectures`: the entry that builds on it). */
export function buildFor(sc: Snapcraft, hostArch: string): string {
  if (!sc.architectures?.length) return hostArch;
  const entry = sc.architectures.find((a) => asList(a['build-on'])!.includes(hostArch));
  if (!entry) throw new SnapcraftError(`architectures: no entry builds on ${hostArch} (build-on: ${sc.architectures.map((a) => asList(a['build-on'])!.join(',')).join(' | ')})`);
  const target = asList(entry['build-for']) ?? asList(entry['build-on'])!;
  if (target.length !== 1) throw new SnapcraftError(`architectures: the entry for ${hostArch} must build for one architecture, not ${target.join(', ')}`);
  return target[0];
}

/**
 * meta/snap.yaml from snapcraft.yaml, as snapcraft writes it: runtime metadata only (no parts, no
 * build keys, no adopt-info), one architecture, the resolved version, apps with their snap.yaml
 * keys, `command-chain` in `assumes` when an app uses it, passthrough keys merged. A classic snap
 * gets no default PATH/LD_LIBRARY_PATH; this packer does not build strict snaps.
 */
export function snapYaml(sc: Snapcraft, opts: { arch: string; version: string }): SnapYaml {
  if (sc.confinement !== 'classic') {
    throw new SnapcraftError(`confinement: ${sc.confinement} snaps need snapcraft's library paths; this packer builds classic snaps only`);
  }
  if (!VERSION_RE.test(opts.version)) {
    throw new SnapcraftError(`version '${opts.version}' is not a valid snap version (1-32 of letters, digits and :.+~-, starting and ending with a letter or digit)`);
  }
  const assumes = new Set(sc.assumes ?? []);
  let apps: Record<string, Record<string, unknown>> | undefined;
  if (sc.apps) {
    apps = {};
    for (const [name, app] of Object.entries(sc.apps)) {
      const out: Record<string, unknown> = {};
      for (const key of SNAP_APP_KEYS) {
        const v = (app as Record<string, unknown>)[key];
        if (v === undefined || v === null || (Array.isArray(v) && v.length === 0)) continue;
        out[key] = v;
      }
      if (app['command-chain']?.length) assumes.add('command-chain');
      Object.assign(out, app.passthrough ?? {});
      apps[name] = out;
    }
  }
  const environment = sc.environment ? Object.fromEntries(Object.entries(sc.environment).filter(([, v]) => v)) : undefined;
  const links = Object.fromEntries(
    (['contact', 'donation', 'issues', 'source-code', 'website'] as const).flatMap((k) => (sc[k] === undefined ? [] : [[k, asList(sc[k])]])),
  );
  const meta: SnapYaml = {
    name: sc.name,
    title: sc.title,
    version: opts.version,
    summary: sc.summary,
    description: sc.description,
    license: sc.license,
    type: sc.type,
    architectures: [opts.arch],
    base: sc.base,
    assumes: assumes.size ? [...assumes].sort() : undefined,
    epoch: sc.epoch === undefined ? undefined : String(sc.epoch),
    apps,
    confinement: sc.confinement,
    grade: sc['build-base'] === 'devel' ? 'devel' : (sc.grade ?? 'stable'),
    environment: environment && Object.keys(environment).length ? environment : undefined,
    plugs: sc.plugs,
    slots: sc.slots,
    hooks: sc.hooks,
    layout: sc.layout,
    'system-usernames': sc['system-usernames'],
    links: Object.keys(links).length ? links : undefined,
    ...(sc.passthrough ?? {}),
  };
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined));
}

/** What builds a part: one of the component recipes (snap/components/<c>/build.sh), or a script of its own. */
export type PartBuild =
  | { kind: 'recipe'; component: string; versionFile?: string }
  | { kind: 'dump'; source: string }
  | { kind: 'script'; source: string; script: string };

const RECIPE_RE = /^\s*bash\s+"\$SNAPCRAFT_PROJECT_DIR\/snap\/components\/([a-z0-9-]+)\/build\.sh"\s+"\$SNAPCRAFT_PART_INSTALL"\s*$/m;
const CRAFTCTL_VERSION_RE = /craftctl set version="\$\(cat "\$SNAPCRAFT_PART_INSTALL\/([^"]+)"\)"/;

export function partBuild(name: string, part: Part): PartBuild {
  const script = part['override-build'];
  if (part.plugin === 'dump') {
    if (!part.source) throw new SnapcraftError(`parts.${name}.source: a dump part needs a source`);
    return { kind: 'dump', source: part.source };
  }
  if (part.plugin !== 'nil') throw new SnapcraftError(`parts.${name}.plugin: '${part.plugin}' is not supported by this packer (nil and dump are)`);
  if (!script) throw new SnapcraftError(`parts.${name}: a nil part needs an override-build script`);
  const recipe = RECIPE_RE.exec(script);
  if (recipe) return { kind: 'recipe', component: recipe[1], versionFile: CRAFTCTL_VERSION_RE.exec(script)?.[1] };
  return { kind: 'script', source: part.source ?? '.', script };
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
}

/** Where `organize` moves a file of a part's install dir (paths relative to it, POSIX). */
export function organizedPath(rel: string, organize: Record<string, string> | undefined): string {
  for (const [from, to] of Object.entries(organize ?? {})) {
    const src = from.replace(/^\/+/, '').replace(/\/+$/, '');
    const dst = to.replace(/^\/+/, '');
    if (src.includes('*')) {
      // dir/* -> dest: each entry directly under dir moves into dest.
      const parts = rel.split('/');
      for (let n = 1; n <= parts.length; n++) {
        const head = parts.slice(0, n).join('/');
        if (globToRegExp(src).test(head)) {
          const rest = parts.slice(n).join('/');
          return path.posix.join(dst, parts[n - 1], rest);
        }
      }
      continue;
    }
    if (rel === src || rel.startsWith(`${src}/`)) {
      const rest = rel.slice(src.length).replace(/^\//, '');
      const target = dst.endsWith('/') ? path.posix.join(dst, path.posix.basename(src)) : dst;
      return rest ? path.posix.join(target, rest) : target;
    }
  }
  return rel;
}

function matches(rel: string, entry: string): boolean {
  const e = entry.replace(/^\/+/, '').replace(/\/+$/, '');
  if (e.includes('*')) {
    const re = globToRegExp(e);
    const parts = rel.split('/');
    return parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')));
  }
  return rel === e || rel.startsWith(`${e}/`);
}

/** The `stage` (or `prime`) filter: `-x` excludes x; any plain entry turns the list into an allow-list. */
export function staged(rel: string, filter: string[] | undefined): boolean {
  if (!filter?.length) return true;
  const includes = filter.filter((f) => !f.startsWith('-'));
  const excludes = filter.filter((f) => f.startsWith('-')).map((f) => f.slice(1));
  if (includes.length && !includes.some((i) => matches(rel, i))) return false;
  return !excludes.some((x) => matches(rel, x));
}
