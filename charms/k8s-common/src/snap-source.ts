// Where the k8s snap comes from: the `snap-installation` resource (this project's packed .snap,
// or a tarball holding one) or, without one, the `channel` option. Canonical's store snap is
// never installed implicitly: with neither, the unit is Blocked and says what to attach or set.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config, Model } from '../../runtime/src/model.js';
import { OptionValueError } from './options.js';

export const SNAP_RESOURCE = 'snap-installation';

export type SnapSource =
  | { readonly kind: 'file'; readonly resource: string; readonly size: number; readonly mtimeMs: number; readonly sha256: string }
  | { readonly kind: 'channel'; readonly channel: string };

export const NO_SNAP_SOURCE_MESSAGE = `No k8s snap: attach the '${SNAP_RESOURCE}' resource (a k8s .snap, or a tarball holding one) or set the 'channel' option`;

/** The resource is there but holds no usable snap; the message names the resource and what to upload. */
export class SnapResourceError extends Error {
  constructor(problem: string) {
    super(`${SNAP_RESOURCE}: ${problem}`);
    this.name = 'SnapResourceError';
  }
}

const RISKS = new Set(['stable', 'candidate', 'beta', 'edge']);
const CHANNEL_PART = /^[a-z0-9][a-z0-9.+_-]*$/;

/** '' (unset), '<risk>', '<track>/<risk>' or '<track>/<risk>/<branch>'. */
export function parseChannel(config: Config): string | undefined {
  const text = config.has('channel') ? config.string('channel').trim() : '';
  if (text === '') return undefined;
  const parts = text.split('/');
  const risk = parts.length === 1 ? parts[0] : parts[1];
  if (parts.length > 3 || !parts.every((part) => CHANNEL_PART.test(part)) || risk === undefined || !RISKS.has(risk)) {
    throw new OptionValueError('channel', `'${text}' is not a snap channel such as 1.33/stable or latest/edge`);
  }
  return text;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The resource file, when one with content is attached (Juju gives a 0-byte file for "none uploaded"). */
async function attachedResource(model: Model): Promise<{ file: string; size: number; mtimeMs: number } | undefined> {
  const file = await model.resourcePath(SNAP_RESOURCE);
  if (file === undefined) return undefined;
  try {
    const info = await stat(file);
    return info.size > 0 ? { file, size: info.size, mtimeMs: Math.trunc(info.mtimeMs) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The source to install from: the resource wins over the channel (as in Canonical's charm, where
 * the resource overrides the snap manifest). Throws OptionValueError for a malformed channel.
 */
export async function resolveSnapSource(model: Model, config: Config, recorded?: string): Promise<SnapSource | undefined> {
  const channel = parseChannel(config);
  const resource = await attachedResource(model);
  if (resource) {
    // Hash the (large) file only when its size or mtime differ from what was installed.
    const prefix = `file:${resource.size}:${resource.mtimeMs}:`;
    const digest = recorded?.startsWith(prefix) ? recorded.slice(prefix.length) : await sha256(resource.file);
    return { kind: 'file', resource: resource.file, size: resource.size, mtimeMs: resource.mtimeMs, sha256: digest };
  }
  return channel ? { kind: 'channel', channel } : undefined;
}

/** What the unit records about the installed snap's source, to notice a new resource. */
export function sourceRecord(source: SnapSource): string {
  return source.kind === 'file' ? `file:${source.size}:${source.mtimeMs}:${source.sha256}` : `channel:${source.channel}`;
}

async function isSquashfs(file: string): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.toString('latin1') === 'hsqs';
  } finally {
    await handle.close();
  }
}

/**
 * Runs `use` with the path of a .snap: the resource itself when it is a snap (squashfs), else the
 * one .snap member of the tarball, extracted into a fresh 0700 directory that is removed afterwards.
 */
export async function withSnapFile<T>(resource: string, use: (snapFile: string) => Promise<T>): Promise<T> {
  if (await isSquashfs(resource)) return use(resource);
  const listing = await execa('tar', ['-tf', resource], { reject: false });
  if (listing.failed) throw new SnapResourceError('is neither a .snap nor a tarball; upload the k8s .snap that `npm run snap` packs, or a tarball holding it');
  const members = String(listing.stdout)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.endsWith('.snap'));
  if (members.length !== 1) {
    throw new SnapResourceError(`the tarball holds ${members.length} .snap files; it must hold exactly one (the k8s snap)`);
  }
  const [member] = members as [string];
  if (path.isAbsolute(member) || member.split('/').includes('..')) throw new SnapResourceError(`the tarball's '${member}' points outside the archive`);
  const dir = await mkdtemp(path.join(tmpdir(), 'k8s-snap-'));
  try {
    const extract = await execa('tar', ['-xf', resource, '-C', dir, '--no-same-owner', '--', member], { reject: false });
    if (extract.failed) throw new SnapResourceError(`cannot extract '${member}': ${String(extract.stderr).trim()}`);
    const extracted = path.join(dir, member);
    if (!(await readdir(path.dirname(extracted))).includes(path.basename(extracted)) || !(await isSquashfs(extracted))) {
      throw new SnapResourceError(`'${member}' in the tarball is not a snap (squashfs) file`);
    }
    return await use(extracted);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
