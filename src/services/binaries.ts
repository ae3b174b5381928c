// The component binaries a node needs: present, unchanged since their recipe built them (the
// SHA-256 recorded in the cache entry's SHA256SUMS), and in FIPS mode built with Go's FIPS 140-3
// module. One check shared by bootstrap, both joins, the supervisor and the CLI.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { GoBuildInfoError, goFipsModule } from '../crypto/go-buildinfo.js';
import { writeFileAtomic } from '../host/files.js';
import { GO_COMPONENTS, Layout } from '../layout.js';

/** [component recipe, binary] */
export type ComponentBinary = readonly [component: string, binary: string];

export class ComponentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComponentError';
  }
}

const fipsVerified = new Map<string, string>();

/**
 * The GOFIPS140 module of a Go component binary; throws ComponentError when FIPS mode is on and
 * the binary lacks it (GODEBUG=fips140=on alone would run the default, unvalidated module).
 */
export function verifyGoFips(layout: Layout, component: string, file: string): string | undefined {
  if (!layout.fipsMode || !GO_COMPONENTS.has(component)) return undefined;
  const cached = fipsVerified.get(file);
  if (cached) return cached;
  let module: string | undefined;
  try {
    module = goFipsModule(file);
  } catch (err) {
    if (err instanceof GoBuildInfoError) throw new ComponentError(`FIPS mode: cannot tell whether ${err.message}; refusing to run it`);
    throw err;
  }
  if (!module) {
    throw new ComponentError(
      `FIPS mode: ${file} was built without Go's FIPS 140-3 module (no GOFIPS140 build setting); refusing to run it. ` +
        `Use the FIPS build: ${layout.componentBuildHint(component)}`,
    );
  }
  fipsVerified.set(file, module);
  return module;
}

/**
 * SHA-256 of files already hashed, by identity (device, inode, size, mtime, ctime: writing a file
 * moves its ctime). The hybrid kubernetes binary behind six symlinks is hashed once.
 */
const hashByIdentity = new Map<string, string>();

/**
 * Files of a cache entry already found to match SHA256SUMS, by identity, kept beside the entry
 * (`<entry>.verified`), so that a bootstrap does not hash ~300 MB of binaries again (0.3 s of its
 * preflight, issue 17). Any write to a file, a copy or a replacement changes its identity (ctime
 * cannot be set back), and the file is hashed again. Beside, not in it: the entry is what a part
 * of the snap stages.
 */
export const verifiedRecordOf = (entry: string): string => `${entry}.verified`;
type VerifiedRecord = Record<string, { identity: string; sha256: string }>;

function readVerified(entry: string): VerifiedRecord {
  try {
    const v = JSON.parse(readFileSync(verifiedRecordOf(entry), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as VerifiedRecord) : {};
  } catch {
    return {};
  }
}

function recordVerified(entry: string, rel: string, identity: string, sha256: string): void {
  try {
    writeFileAtomic(verifiedRecordOf(entry), JSON.stringify({ ...readVerified(entry), [rel]: { identity, sha256 } }) + '\n');
  } catch {
    // a read-only cache: the file is hashed again next time
  }
}

function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * Refuses a component file from the build cache whose SHA-256 differs from the one its recipe
 * recorded (snap/components/lib.sh record_checksums), or that has none. Snap installs are skipped:
 * $SNAP is a read-only image that snapd verified.
 */
export function verifyComponentChecksum(layout: Layout, component: string, file: string): void {
  if (layout.inSnap || component === 'k8s') return;
  // <cache>/<component>/<key>/bin/<file>
  const entry = path.dirname(path.dirname(file));
  const sums = path.join(entry, 'SHA256SUMS');
  const rebuild = `rebuild it: rm -rf ${entry} && bash snap/components/build-all.sh ${component}`;
  if (!existsSync(sums)) {
    throw new ComponentError(
      `${file} has no recorded checksum (${sums} is missing); refusing to run it. For a cache built before checksums were recorded, run bash snap/components/build-all.sh ${component}; otherwise ${rebuild}`,
    );
  }
  const rel = path.relative(entry, file);
  const expected = readFileSync(sums, 'utf8')
    .split('\n')
    .map((line) => /^([0-9a-f]{64}) [ *](.+)$/.exec(line))
    .find((m) => m?.[2] === rel)?.[1];
  if (!expected) throw new ComponentError(`${file} is not listed in ${sums}; refusing to run it; ${rebuild}`);
  const st = statSync(file, { bigint: true });
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  // Known in this process, else from the record beside the entry (read only then), else hashed.
  let actual = hashByIdentity.get(identity);
  let hashed = false;
  if (actual === undefined) {
    const seen = readVerified(entry)[rel];
    hashed = seen?.identity !== identity;
    actual = hashed ? sha256File(file) : seen!.sha256;
  }
  if (actual !== expected) {
    throw new ComponentError(`checksum mismatch: ${file} has SHA-256 ${actual}, but ${sums} recorded ${expected} when it was built; refusing to run it; ${rebuild}`);
  }
  hashByIdentity.set(identity, actual);
  if (hashed) recordVerified(entry, rel, identity, actual);
}

/** Throws a ComponentError naming every missing or (in FIPS mode) non-FIPS binary and how to build it. */
export function assertComponents(layout: Layout, binaries: readonly ComponentBinary[]): void {
  const missing = binaries.filter(([c, b]) => !existsSync(layout.componentBinary(c, b)));
  if (missing.length) {
    const hints = [...new Set(missing.map(([c]) => layout.componentBuildHint(c)))];
    throw new ComponentError(`component binaries are missing: ${missing.map(([c, b]) => layout.componentBinary(c, b)).join(', ')}; ${hints.join('; ')}`);
  }
  for (const [c, b] of binaries) {
    verifyComponentChecksum(layout, c, layout.componentBinary(c, b));
    verifyGoFips(layout, c, layout.componentBinary(c, b));
  }
}
