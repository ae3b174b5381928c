import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { goFipsModule, readGoBuildInfo, GoBuildInfoError } from '../../src/crypto/go-buildinfo.js';

function uvarint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A minimal little-endian ELF64 file whose only sections are .shstrtab and .go.buildinfo. */
function fakeGoBinary(goVersion: string, modinfo: string, flags = 0x2): Buffer {
  const header = Buffer.alloc(32);
  header.write('\xff Go buildinf:', 0, 'latin1');
  header[14] = 8;
  header[15] = flags;
  const str = (s: string) => Buffer.concat([uvarint(Buffer.byteLength(s)), Buffer.from(s)]);
  const buildinfo = Buffer.concat([header, str(goVersion), str(modinfo)]);
  const shstrtab = Buffer.from('\0.shstrtab\0.go.buildinfo\0', 'latin1');
  const shstrtabOff = 64;
  const buildinfoOff = shstrtabOff + shstrtab.length;
  const shoff = buildinfoOff + buildinfo.length;
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // 64-bit
  elf[5] = 1; // little-endian
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(3, 0x3c);
  elf.writeUInt16LE(1, 0x3e);
  const section = (name: number, offset: number, size: number) => {
    const s = Buffer.alloc(64);
    s.writeUInt32LE(name, 0);
    s.writeBigUInt64LE(BigInt(offset), 0x18);
    s.writeBigUInt64LE(BigInt(size), 0x20);
    return s;
  };
  return Buffer.concat([elf, shstrtab, buildinfo, section(0, 0, 0), section(1, shstrtabOff, shstrtab.length), section(11, buildinfoOff, buildinfo.length)]);
}

const dir = mkdtempSync(path.join(tmpdir(), 'gobuildinfo-'));
function write(name: string, data: Buffer | string): string {
  const f = path.join(dir, name);
  writeFileSync(f, data);
  return f;
}

const MODINFO = (extra: string) =>
  `path\tk8s-ts/etcd\nmod\tk8s-ts/etcd\t(devel)\t\ndep\tgo.etcd.io/etcd/server/v3\tv3.6.16\th1:x=\nbuild\t-buildmode=exe\nbuild\tCGO_ENABLED=0\n${extra}build\tGOOS=linux\n`;

describe('Go build info', () => {
  it('reads the Go version and the build settings', () => {
    const f = write('fips', fakeGoBinary('go1.26.8', MODINFO('build\tDefaultGODEBUG=fips140=on\nbuild\tGOFIPS140=v1.0.0-c2097c7c\n')));
    const info = readGoBuildInfo(f);
    expect(info.goVersion).toBe('go1.26.8');
    expect(info.settings).toMatchObject({ CGO_ENABLED: '0', GOOS: 'linux', DefaultGODEBUG: 'fips140=on', GOFIPS140: 'v1.0.0-c2097c7c', '-buildmode': 'exe' });
    expect(goFipsModule(f)).toBe('v1.0.0-c2097c7c');
  });

  it('reports no FIPS module for a default build or GOFIPS140=off', () => {
    expect(goFipsModule(write('plain', fakeGoBinary('go1.26.8', MODINFO(''))))).toBeUndefined();
    expect(goFipsModule(write('off', fakeGoBinary('go1.26.8', MODINFO('build\tGOFIPS140=off\n'))))).toBeUndefined();
  });

  it('refuses what it cannot read, naming the file', () => {
    const script = write('script.sh', '#!/bin/sh\necho hi\n');
    expect(() => readGoBuildInfo(script)).toThrow(GoBuildInfoError);
    expect(() => readGoBuildInfo(script)).toThrow(/script\.sh: not an ELF executable/);
    expect(() => readGoBuildInfo(write('old', fakeGoBinary('go1.17', '', 0)))).toThrow(/pre-Go 1\.18/);
  });

  it('reads the node binary as an ELF without Go build info', () => {
    expect(() => readGoBuildInfo(process.execPath)).toThrow(/no \.go\.buildinfo section/);
  });
});
