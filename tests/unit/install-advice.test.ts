// Advice that fits the install (issue 14 item 5): the snap says `sudo k8s …` and snap commands, a
// dev checkout says `bin/k8s`, `npm start`/`npm stop`/`npm run reset` and the node's own log file.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { K8sdClient } from '../../src/client/index.js';
import { adviseForInstall, installAdvice } from '../../src/install.js';
import { installRoot, installRootOf, Layout } from '../../src/layout.js';

const snap = new Layout({ SNAP: '/snap/k8s/x1', SNAP_COMMON: '/var/snap/k8s/common' });
const dev = new Layout({});
const devRerooted = new Layout({ K8S_ROOT: '/srv/node2' });

describe('advice in the snap', () => {
  const a = installAdvice(snap, '/home/me');

  it('names snap commands and sudo k8s', () => {
    expect(a.kind).toBe('snap');
    expect(a.k8s('status')).toBe('sudo k8s status');
    expect(a.startK8sd).toBe('sudo snap start k8s.k8sd');
    expect(a.stopK8sd).toBe('sudo snap stop k8s');
    expect(a.resetNode).toBe('sudo snap stop k8s, then sudo k8s x-cleanup');
    expect(a.k8sdLog).toBe('sudo snap logs -n 100 k8s.k8sd (or /var/snap/k8s/common/var/log/k8sd.log)');
    for (const text of [a.startK8sd, a.stopK8sd, a.resetNode, a.k8s('status')]) expect(text).not.toMatch(/npm|bin\/k8s/);
  });

  it('says the commands k8sd quotes as the snap runs them', () => {
    expect(adviseForInstall('node "cp2" is already a member; remove it first with "k8s remove-node cp2"', a)).toBe('node "cp2" is already a member; remove it first with "sudo k8s remove-node cp2"');
  });
});

describe('advice in a dev checkout', () => {
  it('inside the checkout: bin/k8s and npm scripts', () => {
    const a = installAdvice(dev, installRoot);
    expect(a.kind).toBe('dev');
    expect(a.k8s('status')).toBe('sudo bin/k8s status');
    expect(a.startK8sd).toBe('sudo npm start');
    expect(a.stopK8sd).toBe('sudo npm stop');
    expect(a.resetNode).toBe('sudo npm run reset');
    expect(a.k8sdLog).toBe('/var/snap/k8s/common/var/log/k8sd.log');
    for (const text of [a.startK8sd, a.stopK8sd, a.resetNode, a.k8s('status')]) expect(text).not.toMatch(/snap (start|stop)|sudo k8s /);
  });

  it('elsewhere: the launcher and the checkout by their full paths', () => {
    const a = installAdvice(dev, '/tmp');
    expect(a.k8s('status')).toBe(`sudo ${path.join(installRoot, 'bin/k8s')} status`);
    expect(a.startK8sd).toBe(`sudo npm --prefix ${installRoot} start`);
  });

  it('a re-rooted node keeps its K8S_ROOT (after sudo, which resets the environment) and its own log', () => {
    const a = installAdvice(devRerooted, installRoot);
    expect(a.k8s('status')).toBe('sudo K8S_ROOT=/srv/node2 bin/k8s status');
    expect(a.stopK8sd).toBe('sudo K8S_ROOT=/srv/node2 npm stop');
    expect(a.k8sdLog).toBe('/srv/node2/var/snap/k8s/common/var/log/k8sd.log');
  });

  it('says the commands k8sd quotes the dev way, and leaves other quotes alone', () => {
    const a = installAdvice(dev, installRoot);
    expect(adviseForInstall('join token "w1" expired; ask for a new one with "k8s get-join-token"', a)).toBe('join token "w1" expired; ask for a new one with "sudo bin/k8s get-join-token"');
    expect(adviseForInstall('run `k8s status`, then "k8s kubectl get nodes"', a)).toBe('run `sudo bin/k8s status`, then "sudo bin/k8s kubectl get nodes"');
    expect(adviseForInstall('key "k8s-thing" and "sudo k8s status" stay', a)).toBe('key "k8s-thing" and "sudo k8s status" stay');
  });
});

describe('the client names the install form when k8sd is not running', () => {
  it.each([
    ['snap', { SNAP: '/snap/k8s/x1', SNAP_COMMON: '' }, /start it with "sudo snap start k8s.k8sd"/],
    ['dev', {}, /start it with "sudo K8S_ROOT=\S+ npm (--prefix \S+ )?start"/],
  ])('%s', async (_, env, expected) => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'k8s-advice-'));
    try {
      const layout = new Layout({ ...env, K8S_ROOT: root, ...(env.SNAP !== undefined ? { SNAP_COMMON: path.join(root, 'common') } : {}) });
      await expect(new K8sdClient(layout).call({ method: 'GET', path: '/1.0/k8sd/node' } as never)).rejects.toThrow(expected);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('the install root', () => {
  it('is the directory above dist/ (or src/), from tsc modules and from k8sd bundle alike', () => {
    expect(installRootOf('/snap/k8s/x1/dist/layout.js')).toBe('/snap/k8s/x1');
    expect(installRootOf('/snap/k8s/x1/dist/k8sd/main.js')).toBe('/snap/k8s/x1');
    expect(installRootOf('/home/me/src/k8s-ts/src/layout.ts')).toBe('/home/me/src/k8s-ts');
    expect(installRootOf('/home/me/src/k8s-ts/dist/k8sd/main.js')).toBe('/home/me/src/k8s-ts');
    expect(installRoot).toBe(path.resolve(import.meta.dirname, '../..'));
  });
});
