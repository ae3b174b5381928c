import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { silentLogger } from '../../src/log.js';
import { SnapServiceManager, Supervisor } from '../../src/services/manager.js';

function fakeEtcd(script: string): Layout {
  const root = mkdtempSync(path.join(tmpdir(), 'k8s-sup-'));
  const layout = new Layout({ K8S_ROOT: path.join(root, 'root'), K8S_COMPONENT_CACHE: path.join(root, 'cache') });
  const bin = layout.componentBinary('etcd', 'etcd');
  mkdirSync(path.dirname(bin), { recursive: true });
  writeFileSync(bin, `#!/bin/sh\n${script}\n`);
  chmodSync(bin, 0o755);
  mkdirSync(layout.argsDir, { recursive: true });
  writeFileSync(layout.args('etcd'), '--name=n1\n');
  writeFileSync(layout.args('etcd-env'), 'GODEBUG=fips140=on\n');
  return layout;
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('supervisor', () => {
  it('passes the args file and env file, restarts a crashed service with back-off, and stops it cleanly', async () => {
    const layout = fakeEtcd('echo "args=$* godebug=$GODEBUG"; exec sleep 30');
    const sup = new Supervisor(layout, silentLogger(), 2000);
    await sup.start('etcd');
    await wait(300);
    const first = await sup.status('etcd');
    expect(first.state).toBe('running');
    process.kill(first.pid!, 'SIGKILL');
    await wait(1500);
    const second = await sup.status('etcd');
    expect(second.state).toBe('running');
    expect(second.restarts).toBe(1);
    expect(second.pid).not.toBe(first.pid);
    expect(readFileSync(layout.log('etcd'), 'utf8')).toContain('args=--name=n1 godebug=fips140=on');
    await sup.stopAll();
    expect((await sup.status('etcd')).state).toBe('stopped');
  });

  it('reports a service that keeps exiting', async () => {
    const layout = fakeEtcd('exit 3');
    const sup = new Supervisor(layout, silentLogger());
    await sup.start('etcd');
    await wait(2500);
    const st = await sup.status('etcd');
    expect(st.restarts).toBeGreaterThanOrEqual(2);
    expect(st.lastExit).toBe('exited with code 3');
    await sup.stopAll();
  });
});

describe('snap service manager', () => {
  it('drives snapctl', async () => {
    const calls: string[][] = [];
    const mgr = new SnapServiceManager(async (argv) => {
      calls.push(argv);
      return { stdout: 'Service  Startup  Current  Notes\nk8s.etcd  enabled  active  -\n' };
    });
    await mgr.start('etcd');
    expect((await mgr.status('etcd')).state).toBe('running');
    await mgr.restart('etcd');
    await mgr.stopAll();
    expect(calls).toEqual([['start', '--enable', 'k8s.etcd'], ['services', 'k8s.etcd'], ['restart', 'k8s.etcd'], ['stop', '--disable', 'k8s.etcd']]);
  });
});
