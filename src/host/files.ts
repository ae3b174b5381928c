// Atomic file writes. A single file is written to a temp file, fsynced and renamed.
// A set of files is committed through a journal so that a crash leaves either the
// old set or the new set on disk, never a mix: recoverFileSets() rolls a journal forward.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, writeSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface FileSpec {
  path: string;
  content: string | Buffer;
  /** Defaults to 0o644; anything holding a key, token or kubeconfig must be 0o600. */
  mode?: number;
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch {
    // Some filesystems refuse directory fsync; the rename is still atomic.
  }
}

function writeTemp(target: string, content: string | Buffer, mode: number): string {
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode); // umask must not widen or narrow the requested mode
  return tmp;
}

export function writeFileAtomic(target: string, content: string | Buffer, mode = 0o644): void {
  const tmp = writeTemp(target, content, mode);
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

/**
 * Like writeFileAtomic for content too large for memory: `write` streams into the temp file's
 * descriptor; the file is fsynced and renamed into place only when it resolves (removed otherwise).
 */
export async function writeFileAtomicStream(target: string, mode: number, write: (fd: number) => Promise<void>): Promise<void> {
  mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    chmodSync(tmp, mode);
    await write(fd);
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

/** Writes all of `data` at the descriptor's position. */
export function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset);
}

interface Journal {
  moves: Array<{ from: string; to: string }>;
}

/** Hook for crash-injection tests: called between renames of a file set commit. */
export type CommitProbe = (done: number, total: number) => void;

/**
 * Writes a set of files so that readers see the old set or the new set.
 * journalDir holds the journal; call recoverFileSets(journalDir) at start-up.
 */
export function commitFileSet(files: FileSpec[], journalDir: string, probe?: CommitProbe): void {
  const moves: Journal['moves'] = [];
  try {
    for (const f of files) moves.push({ from: writeTemp(f.path, f.content, f.mode ?? 0o644), to: f.path });
  } catch (err) {
    for (const m of moves) rmSync(m.from, { force: true });
    throw err;
  }
  mkdirSync(journalDir, { recursive: true, mode: 0o700 });
  const journal = path.join(journalDir, `fileset-${Date.now()}-${randomBytes(3).toString('hex')}.journal`);
  writeFileAtomic(journal, JSON.stringify({ moves } satisfies Journal), 0o600);
  moves.forEach((m, i) => {
    probe?.(i, moves.length);
    renameSync(m.from, m.to);
  });
  for (const dir of new Set(moves.map((m) => path.dirname(m.to)))) fsyncDir(dir);
  rmSync(journal, { force: true });
}

/** Rolls forward any file set whose journal was written but not finished. Returns the number recovered. */
export function recoverFileSets(journalDir: string): number {
  if (!existsSync(journalDir)) return 0;
  let recovered = 0;
  for (const name of readdirSync(journalDir).filter((n) => n.endsWith('.journal')).sort()) {
    const journalPath = path.join(journalDir, name);
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as Journal;
    for (const m of journal.moves) {
      if (existsSync(m.from)) renameSync(m.from, m.to);
    }
    rmSync(journalPath, { force: true });
    recovered++;
  }
  return recovered;
}

/** Removes files written so far; used to roll back a failed flow step. */
export function removeFiles(paths: string[]): void {
  for (const p of paths) rmSync(p, { force: true, recursive: true });
}

/** Directories that would have to be created to hold these paths (deepest last). */
export function missingDirs(paths: string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    let dir = path.dirname(p);
    while (dir !== path.dirname(dir) && !existsSync(dir)) {
      out.add(dir);
      dir = path.dirname(dir);
    }
  }
  return [...out].sort((a, b) => a.length - b.length);
}

/** Removes these directories if they are empty, deepest first; used to roll back a step completely. */
export function removeEmptyDirs(dirs: string[]): void {
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch {
      // not empty, or already gone
    }
  }
}
