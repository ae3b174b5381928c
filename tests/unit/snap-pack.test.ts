import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { buildFor, organizedPath, parseSnapcraft, partBuild, snapYaml, SnapcraftError, staged } from '../../src/snap/snapcraft.js';

const project = parseSnapcraft(yaml.load(readFileSync(path.join(__dirname, '../../snapcraft.yaml'), 'utf8')));

describe('snap.yaml from snapcraft.yaml', () => {
  const meta = snapYaml(project, { arch: 'amd64', version: 'v1.37.2' });

  it('keeps runtime metadata only, with one architecture and the resolved version', () => {
    expect(meta).toMatchObject({ name: 'k8s', version: 'v1.37.2', architectures: ['amd64'], base: 'core22', confinement: 'classic', grade: 'stable' });
    for (const buildKey of ['parts', 'adopt-info', 'build-base', 'passthrough']) expect(meta).not.toHaveProperty(buildKey);
    // classic: snapcraft adds no PATH/LD_LIBRARY_PATH
    expect(meta).not.toHaveProperty('environment');
  });

  it('carries every app with its snap.yaml keys', () => {
    const apps = meta.apps as Record<string, Record<string, unknown>>;
    expect(Object.keys(apps)).toEqual(Object.keys(project.apps!));
    expect(apps.containerd).toEqual({
      command: 'wrappers/run-service containerd', 'start-timeout': '5m', daemon: 'notify', before: ['kubelet'],
      'stop-mode': 'sigterm', 'restart-condition': 'always', 'install-mode': 'disable',
    });
    expect(apps.k8s).toEqual({ command: 'wrappers/run-cli k8s' });
  });

  it('adds command-chain to assumes when an app uses one, and merges passthrough', () => {
    const sc = parseSnapcraft({ ...project, apps: { a: { command: 'bin/a', 'command-chain': ['bin/chain'], passthrough: { 'x-extra': 1 } } }, passthrough: { 'x-top': true } });
    const m = snapYaml(sc, { arch: 'amd64', version: '1' });
    expect(m.assumes).toEqual(['command-chain']);
    expect((m.apps as Record<string, unknown>).a).toEqual({ command: 'bin/a', 'command-chain': ['bin/chain'], 'x-extra': 1 });
    expect(m['x-top']).toBe(true);
  });

  it('refuses an invalid version and non-classic confinement, naming them', () => {
    expect(() => snapYaml(project, { arch: 'amd64', version: 'has space' })).toThrow(/version 'has space'/);
    expect(() => snapYaml({ ...project, confinement: 'strict' }, { arch: 'amd64', version: '1' })).toThrow(SnapcraftError);
  });

  it('names the key of a bad snapcraft.yaml', () => {
    expect(() => parseSnapcraft({ ...project, apps: { k8s: { command: 'x', daemon: 'sometimes' } } })).toThrow(/apps\.k8s\.daemon/);
    expect(() => parseSnapcraft({ ...project, confinement: undefined })).toThrow(/confinement/);
  });

  it('builds for the architecture of the entry that builds on this host', () => {
    expect(buildFor(project, 'amd64')).toBe('amd64');
    expect(() => buildFor(project, 's390x')).toThrow(/no entry builds on s390x/);
  });
});

describe('parts', () => {
  it('component parts run their recipe; the k8s part its own script', () => {
    expect(partBuild('kubernetes', project.parts.kubernetes)).toEqual({ kind: 'recipe', component: 'kubernetes', versionFile: 'version' });
    expect(partBuild('etcd', project.parts.etcd)).toEqual({ kind: 'recipe', component: 'etcd', versionFile: undefined });
    expect(partBuild('k8s', project.parts.k8s)).toMatchObject({ kind: 'script', source: '.' });
    expect(partBuild('wrappers', project.parts.wrappers)).toEqual({ kind: 'dump', source: 'snap/wrappers' });
  });

  it('ships no test tool: no kube-bench or test-images part', () => {
    expect(Object.keys(project.parts)).not.toContain('kube-bench');
    expect(Object.keys(project.parts)).not.toContain('test-images');
  });

  it('organize renames files and directories as snapcraft does', () => {
    const { organize } = project.parts.coredns;
    expect(organizedPath('version', organize)).toBe('share/k8s/components/coredns.version');
    expect(organizedPath('bin/coredns.tar', organize)).toBe('images/coredns.tar');
    expect(organizedPath('bin/coredns', organize)).toBe('bin/coredns');
    expect(organizedPath('bin/bridge', project.parts.cni.organize)).toBe('opt/cni/bin/bridge');
    expect(organizedPath('lib/x.so', { 'lib/*': 'usr/lib/' })).toBe('usr/lib/x.so');
    expect(organizedPath('a', { a: 'dir/' })).toBe('dir/a');
  });

  it('stage filters exclude with -, and plain entries allow only themselves', () => {
    const { stage } = project.parts.coredns;
    expect(staged('.complete', stage)).toBe(false);
    expect(staged('bin/coredns', stage)).toBe(false);
    expect(staged('images/coredns.tar', stage)).toBe(true);
    expect(staged('bin/x', ['bin', '-bin/y'])).toBe(true);
    expect(staged('bin/y', ['bin', '-bin/y'])).toBe(false);
    expect(staged('etc/z', ['bin'])).toBe(false);
    expect(staged('lib/a.so', ['-lib/*.so'])).toBe(false);
  });
});

describe('the snap layout k8sd expects', () => {
  it('finds each component binary where snapcraft.yaml stages it', () => {
    const l = new Layout({ SNAP: '/snap/k8s/x1', SNAP_COMMON: '/var/snap/k8s/common' });
    const staged = (part: string, rel: string): string => path.posix.join('/snap/k8s/x1', organizedPath(rel, project.parts[part].organize));
    expect(l.componentBinary('cni', 'bridge')).toBe(staged('cni', 'bin/bridge'));
    expect(l.componentBinary('etcd', 'etcd')).toBe(staged('etcd', 'bin/etcd'));
    expect(l.componentBinary('kubernetes', 'kubelet')).toBe(staged('kubernetes', 'bin/kubelet'));
    // The CNI plugins have a directory of their own: k8sd links all of it into /opt/cni/bin.
    expect(path.dirname(l.componentBinary('cni', 'bridge'))).not.toBe(path.dirname(l.componentBinary('etcd', 'etcd')));
  });
});
