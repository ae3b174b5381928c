import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { silentLogger } from '../../src/log.js';
import { assertComponents, ComponentError } from '../../src/services/binaries.js';
import { Supervisor } from '../../src/services/manager.js';
import { installComponent, recordChecksums } from './component-cache.js';

function layoutFor(env: Record<string, string> = {}): Layout {
  const root = mkdtempSync(path.join(tmpdir(), 'k8s-comp-'));
  return new Layout({ K8S_ROOT: path.join(root, 'root'), K8S_COMPONENT_CACHE: path.join(root, 'cache'), ...env });
}

function install(layout: Layout, component: string, binary: string, content = '#!/bin/sh\nexec sleep 30\n'): string {
  return installComponent(layout, component, binary, content);
}

describe('component binaries in FIPS mode', () => {
  it('both modes run the Go components built with the FIPS module (GOFIPS140=v1.0.0), other components as they are', () => {
    const normal = layoutFor();
    const etcd = normal.componentVersion('etcd');
    expect(normal.goFips140).toBe('v1.0.0');
    expect(normal.fipsMode).toBe(false);
    expect(normal.componentBinary('etcd', 'etcd')).toContain(`/etcd/${etcd}-fips140-v1.0.0/bin/etcd`);
    const fips = layoutFor({ K8S_FIPS_RUNTIME: '1' });
    expect(fips.fipsMode).toBe(true);
    expect(fips.componentBinary('etcd', 'etcd')).toBe(normal.componentBinary('etcd', 'etcd').replace(normal.componentCacheRoot, fips.componentCacheRoot));
    expect(fips.componentBinary('kubernetes', 'kubelet')).toContain('-fips140-v1.0.0/bin/kubelet');
    expect(fips.componentBinary('pause', 'pause.tar')).not.toContain('fips140');
    expect(fips.componentBinary('kube-bench', 'kube-bench')).not.toContain('fips140');
    expect(layoutFor({ K8S_GOFIPS140: 'v1.26.0' }).componentCacheKey('runc')).toMatch(/-fips140-v1\.26\.0$/);
    // K8S_GOFIPS140= (empty): builds without the module, as snap/components/lib.sh.
    expect(layoutFor({ K8S_GOFIPS140: '' }).componentCacheKey('etcd')).toBe(etcd);
  });

  it('GODEBUG: fips140=on in FIPS mode, off for FIPS-module builds otherwise, other settings kept', () => {
    expect(layoutFor({ K8S_FIPS_RUNTIME: '1' }).goDebug('http2client=0,fips140=off')).toBe('http2client=0,fips140=on');
    expect(layoutFor().goDebug('')).toBe('fips140=off');
    expect(layoutFor().goDebug('x509sha1=1, fips140=on')).toBe('x509sha1=1,fips140=off');
    expect(layoutFor({ K8S_GOFIPS140: '' }).goDebug('http2client=0,fips140=on')).toBe('http2client=0');
  });

  it('a missing binary names the file and the FIPS build command', () => {
    const fips = layoutFor({ K8S_FIPS_RUNTIME: '1' });
    expect(() => assertComponents(fips, [['etcd', 'etcd']])).toThrow(ComponentError);
    expect(() => assertComponents(fips, [['etcd', 'etcd']])).toThrow(/missing: .*-fips140-v1\.0\.0\/bin\/etcd; build it with bash snap\/components\/build-all\.sh etcd$/);
    // FIPS mode with the module switched off in the build settings: the hint switches it back on.
    expect(() => assertComponents(layoutFor({ K8S_FIPS_RUNTIME: '1', K8S_GOFIPS140: '' }), [['etcd', 'etcd']])).toThrow(/build it with K8S_GOFIPS140=v1\.0\.0 bash snap\/components\/build-all\.sh etcd$/);
  });

  it('FIPS mode refuses a Go component that carries no GOFIPS140 build setting; normal mode does not look', () => {
    const fips = layoutFor({ K8S_FIPS_RUNTIME: '1' });
    install(fips, 'etcd', 'etcd');
    expect(() => assertComponents(fips, [['etcd', 'etcd']])).toThrow(/FIPS mode: cannot tell whether .*etcd: not an ELF executable/);
    // An ELF that is not a Go binary (Node itself).
    const elf = layoutFor({ K8S_FIPS_RUNTIME: '1' });
    const target = elf.componentBinary('cni', 'bridge');
    mkdirSync(path.dirname(target), { recursive: true });
    symlinkSync(process.execPath, target);
    recordChecksums(path.dirname(path.dirname(target)));
    expect(() => assertComponents(elf, [['cni', 'bridge']])).toThrow(/no \.go\.buildinfo section/);
    const normal = layoutFor();
    install(normal, 'etcd', 'etcd');
    expect(() => assertComponents(normal, [['etcd', 'etcd']])).not.toThrow();
  });

  it('the supervisor will not start a non-FIPS Go binary in FIPS mode', async () => {
    const fips = layoutFor({ K8S_FIPS_RUNTIME: '1' });
    install(fips, 'etcd', 'etcd');
    mkdirSync(fips.argsDir, { recursive: true });
    writeFileSync(fips.args('etcd'), '--name=n1\n');
    const sup = new Supervisor(fips, silentLogger(), 2000);
    await expect(sup.start('etcd')).rejects.toThrow(/etcd: FIPS mode: cannot tell whether/);
    expect((await sup.status('etcd')).state).toBe('failed');
  });
});
