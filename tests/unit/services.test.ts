import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { silentLogger } from '../../src/log.js';
import { SnapServiceManager, Supervisor } from '../../src/services/manager.js';
import { installComponent } from './component-cache.js';

function fakeEtcd(script: string): Layout {
  const root = mkdtempSync(path.join(tmpdir(), 'k8s-sup-'));
  const layout = new Layout({ K8S_ROOT: path.join(root, 'root'), K8S_COMPONENT_CACHE: path.join(root, 'cache') });
  installComponent(layout, 'etcd', 'etcd', `#!/bin/sh\n${script}\n`);
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
    // FIPS mode is k8sd's decision: a stale fips140=on in an env file does not turn it on.
    expect(readFileSync(layout.log('etcd'), 'utf8')).toContain('args=--name=n1 godebug=fips140=off');
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

describe('reaping services a killed k8sd left behind', () => {
  it('finds service processes by their arguments under this root even without pid files, and never those of another root', async () => {
    const { spawn } = await import('node:child_process');
    const { findServiceProcesses } = await import('../../src/services/manager.js');
    const base = mkdtempSync(path.join(tmpdir(), 'k8s-reap-'));
    const mine = new Layout({ K8S_ROOT: path.join(base, 'a'), K8S_COMPONENT_CACHE: path.join(base, 'cache') });
    const other = new Layout({ K8S_ROOT: path.join(base, 'b'), K8S_COMPONENT_CACHE: path.join(base, 'cache') });
    const fake = (argv0: string, dataDir: string) =>
      spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '--', `--data-dir=${dataDir}`], { argv0, stdio: 'ignore' });
    const ours = fake('etcd', path.join(mine.snapCommon, 'var/lib/etcd'));
    const theirs = fake('etcd', path.join(other.snapCommon, 'var/lib/etcd'));
    const notAService = fake('sleepy', path.join(mine.snapCommon, 'x'));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const found = findServiceProcesses(mine);
      expect(found).toContainEqual([ours.pid, 'etcd']);
      expect(found.map(([p]) => p)).not.toContain(theirs.pid);
      expect(found.map(([p]) => p)).not.toContain(notAService.pid);
      const sup = new Supervisor(mine, silentLogger(), 2000);
      await sup.reapStale();
      await new Promise((r) => setTimeout(r, 200));
      expect(ours.exitCode !== null || ours.signalCode !== null).toBe(true);
      expect(theirs.exitCode).toBeNull();
      expect(theirs.signalCode).toBeNull();
    } finally {
      for (const p of [ours, theirs, notAService]) p.kill('SIGKILL');
    }
  });

  it('a second k8sd on the same root is recognised from the pid file', async () => {
    const { runningK8sd } = await import('../../src/k8sd/daemon.js');
    const { spawn } = await import('node:child_process');
    const dir = mkdtempSync(path.join(tmpdir(), 'k8s-pid-'));
    const pidFile = path.join(dir, 'k8sd.pid');
    expect(runningK8sd(pidFile)).toBeUndefined();
    const k8sd = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', '--', '/opt/k8s/dist/k8sd/main.js'], { stdio: 'ignore' });
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      writeFileSync(pidFile, `${k8sd.pid}\n`);
      expect(runningK8sd(pidFile)).toBe(k8sd.pid);
      writeFileSync(pidFile, `${other.pid}\n`); // a reused pid that is not k8sd
      expect(runningK8sd(pidFile)).toBeUndefined();
      writeFileSync(pidFile, `${process.pid}\n`);
      expect(runningK8sd(pidFile)).toBeUndefined();
    } finally {
      k8sd.kill('SIGKILL');
      other.kill('SIGKILL');
    }
  });
});
