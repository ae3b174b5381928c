import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { raiseKernelLimits } from '../../src/k8sd/membership/node-components.js';
import { silentLogger } from '../../src/log.js';

describe('kernel limits a node needs', () => {
  it('raises a limit below the minimum and never lowers one above it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'limits-'));
    const low = path.join(dir, 'max_user_instances');
    const high = path.join(dir, 'max_user_watches');
    writeFileSync(low, '128\n');
    writeFileSync(high, '1048576\n');
    raiseKernelLimits(silentLogger(), [
      [low, 1024],
      [high, 524288],
    ]);
    expect(readFileSync(low, 'utf8').trim()).toBe('1024');
    expect(readFileSync(high, 'utf8').trim()).toBe('1048576');
  });

  it('keeps going when a limit cannot be read', () => {
    expect(() => raiseKernelLimits(silentLogger(), [['/nonexistent/limit', 1]])).not.toThrow();
  });
});
