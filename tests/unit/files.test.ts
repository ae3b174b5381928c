import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commitFileSet, recoverFileSets, writeFileAtomic } from '../../src/host/files.js';

const tmp = (): string => mkdtempSync(path.join(tmpdir(), 'k8s-files-'));

describe('atomic files', () => {
  it('writes with the requested mode regardless of umask', () => {
    const d = tmp();
    writeFileAtomic(path.join(d, 'a.key'), 'secret', 0o600);
    expect(statSync(path.join(d, 'a.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(d, 'a.key'), 'utf8')).toBe('secret');
  });

  it('a crash between renames is rolled forward to the complete new set', () => {
    const d = tmp();
    const journal = path.join(d, 'journal');
    const files = ['a', 'b', 'c'].map((n) => path.join(d, n));
    for (const f of files) writeFileSync(f, 'old');
    expect(() =>
      commitFileSet(files.map((f) => ({ path: f, content: 'new' })), journal, (done) => {
        if (done === 1) throw new Error('simulated crash');
      }),
    ).toThrow('simulated crash');
    // Mid-way: a mix on disk, but the journal knows the rest.
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(['new', 'old', 'old']);
    expect(recoverFileSets(journal)).toBe(1);
    expect(files.map((f) => readFileSync(f, 'utf8'))).toEqual(['new', 'new', 'new']);
  });

  it('a failure before the journal leaves the old set and no temp files', () => {
    const d = tmp();
    writeFileSync(path.join(d, 'a'), 'old');
    expect(() => commitFileSet([{ path: path.join(d, 'a'), content: 'new' }, { path: path.join(d, 'a', 'under-a-file'), content: 'x' }], path.join(d, 'j'))).toThrow();
    expect(readFileSync(path.join(d, 'a'), 'utf8')).toBe('old');
    expect(existsSync(path.join(d, 'j'))).toBe(false);
  });
});
