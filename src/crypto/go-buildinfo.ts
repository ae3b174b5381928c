// Reads the build settings a Go toolchain embeds in an ELF executable (the `.go.buildinfo`
// section that `go version -m` prints), without needing Go on the host. FIPS mode uses it to
// prove that each Go component carries the Go Cryptographic Module (GOFIPS140=v1.0.0-…)
// before running it: GODEBUG=fips140=on on a binary built without it only approximates FIPS.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export class GoBuildInfoError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'GoBuildInfoError';
  }
}

export interface GoBuildInfo {
  goVersion: string;
  /** `build` lines: GOFIPS140, DefaultGODEBUG, -tags, CGO_ENABLED, ... */
  settings: Record<string, string>;
}

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, offset);
  return buf.subarray(0, n);
}

/** Unsigned LEB128 varint at `pos`: [value, next position]. */
function uvarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && shift < 35; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, i + 1];
    shift += 7;
  }
  throw new Error('truncated varint');
}

/** File offset and size of the `.go.buildinfo` section of a little-endian ELF64 file. */
function buildInfoSection(fd: number, file: string): { offset: number; size: number } {
  const h = readAt(fd, 0, 64);
  if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46) throw new GoBuildInfoError(file, 'not an ELF executable');
  if (h[4] !== 2 || h[5] !== 1) throw new GoBuildInfoError(file, 'only little-endian 64-bit ELF is supported');
  const shoff = Number(h.readBigUInt64LE(0x28));
  const shentsize = h.readUInt16LE(0x3a);
  const shnum = h.readUInt16LE(0x3c);
  const shstrndx = h.readUInt16LE(0x3e);
  const table = readAt(fd, shoff, shentsize * shnum);
  const section = (i: number) => ({
    name: table.readUInt32LE(i * shentsize),
    offset: Number(table.readBigUInt64LE(i * shentsize + 0x18)),
    size: Number(table.readBigUInt64LE(i * shentsize + 0x20)),
  });
  const names = section(shstrndx);
  const strtab = readAt(fd, names.offset, names.size);
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const end = strtab.indexOf(0, s.name);
    if (strtab.toString('latin1', s.name, end) === '.go.buildinfo') return { offset: s.offset, size: s.size };
  }
  throw new GoBuildInfoError(file, 'has no .go.buildinfo section (not a Go binary, or stripped of it)');
}

/** The Go version and build settings of a Go executable (Go 1.18+ inline format). */
export function readGoBuildInfo(file: string): GoBuildInfo {
  const fd = openSync(file, 'r');
  try {
    if (!fstatSync(fd).isFile()) throw new GoBuildInfoError(file, 'not a regular file');
    const { offset, size } = buildInfoSection(fd, file);
    const data = readAt(fd, offset, Math.min(size, 64 * 1024));
    const at = data.indexOf(MAGIC);
    // Flags byte 0x2: version and module info follow inline as varint-prefixed strings.
    if (at < 0 || (data[at + 15]! & 0x2) === 0) throw new GoBuildInfoError(file, 'uses a pre-Go 1.18 build info format');
    let pos = at + 32;
    const strings: string[] = [];
    for (let i = 0; i < 2; i++) {
      const [len, next] = uvarint(data, pos);
      strings.push(data.toString('utf8', next, next + len));
      pos = next + len;
    }
    const settings: Record<string, string> = {};
    for (const line of strings[1]!.split('\n')) {
      const [kind, rest] = [line.slice(0, line.indexOf('\t')), line.slice(line.indexOf('\t') + 1)];
      if (kind !== 'build') continue;
      const eq = rest.indexOf('=');
      if (eq > 0) settings[rest.slice(0, eq)] = rest.slice(eq + 1);
    }
    return { goVersion: strings[0]!, settings };
  } catch (err) {
    if (err instanceof GoBuildInfoError) throw err;
    throw new GoBuildInfoError(file, `unreadable Go build info: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** The GOFIPS140 module version a Go binary was built with (e.g. "v1.0.0-c2097c7c"), or undefined. */
export function goFipsModule(file: string): string | undefined {
  const v = readGoBuildInfo(file).settings.GOFIPS140;
  return v && v !== 'off' ? v : undefined;
}
