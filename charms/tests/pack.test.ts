// Packs both charms with charms/pack.sh, unpacks them as Juju would, and runs their dispatch
// against fake hook tools, a fake `snap` and a fake `k8s`. The charms carry no Node: they run on the
// snap's (K8S_CHARM_NODE_BIN here points at the test's own Node 24, standing in for the snap's).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeJuju, removeFakeJujus, FAKE_HOOK_TOOL, FAKE_SNAP, type FakeJuju } from './fixtures/fake-juju.js';

afterAll(removeFakeJujus);

const packScript = fileURLToPath(new URL('../pack.sh', import.meta.url));
const out = mkdtempSync(path.join(tmpdir(), 'charms-'));
const charmDirs: Record<string, string> = {};

beforeAll(async () => {
  const packed = await execa('bash', [packScript, '--out', out], { reject: false });
  if (packed.failed) throw new Error(`pack.sh failed:\n${packed.stderr}`);
  for (const charm of ['k8s', 'k8s-worker']) {
    const dir = path.join(out, `unpacked-${charm}`);
    mkdirSync(dir);
    execFileSync('unzip', ['-q', path.join(out, `${charm}_amd64.charm`), '-d', dir]);
    charmDirs[charm] = dir;
  }
}, 600_000);

// Two .charm files and their unpacked trees (~2 MB each now that Node comes from the snap).
afterAll(() => rmSync(out, { recursive: true, force: true }), 120_000);

function charmDir(charm: string): string {
  const dir = charmDirs[charm];
  if (!dir) throw new Error(`${charm} was not unpacked`);
  return dir;
}

/** Runs the unpacked charm's dispatch the way the unit agent does: from the charm dir, with a clean env. */
async function runDispatch(charm: string, juju: FakeJuju, env: Record<string, string>): Promise<{ exitCode: number | undefined; stderr: string }> {
  const dir = charmDir(charm);
  const result = await execa('./dispatch', [], {
    cwd: dir,
    env: {
      ...juju.env,
      JUJU_CHARM_DIR: dir,
      JUJU_MODEL_UUID: 'a1b2c3d4-0000-4000-8000-000000000000',
      K8S_CHARM_SNAP_CMD: FAKE_SNAP,
      K8S_CHARM_NODE_BIN: process.execPath,
      ...env,
    },
    extendEnv: false,
    reject: false,
  });
  return { exitCode: result.exitCode, stderr: String(result.stderr) };
}

describe('packed charms', () => {
  it.each(['k8s', 'k8s-worker'])('%s.charm holds dispatch, the snap installer, the metadata, the compiled charm and its modules, and no Node', (charm) => {
    const dir = charmDir(charm);
    expect(statSync(path.join(out, `${charm}_amd64.charm`)).size).toBeLessThan(2 * 1024 * 1024);
    expect(existsSync(path.join(dir, 'bin/node'))).toBe(false);
    expect(statSync(path.join(dir, 'bin/install-snap')).mode & 0o111).not.toBe(0);
    for (const file of ['dispatch', 'manifest.yaml', 'metadata.yaml', 'config.yaml', 'actions.yaml', 'package.json', `lib/${charm}/src/main.js`]) {
      expect(existsSync(path.join(dir, file)), file).toBe(true);
    }
    expect(statSync(path.join(dir, 'dispatch')).mode & 0o111).not.toBe(0);
    expect(readFileSync(path.join(dir, 'dispatch'), 'utf8')).toContain('${K8S_CHARM_NODE_BIN:-/snap/k8s/current/bin/node}');
    expect(existsSync(path.join(dir, 'node_modules/execa/package.json'))).toBe(true);
    expect(existsSync(path.join(dir, 'node_modules/js-yaml/package.json'))).toBe(true);
    expect(existsSync(path.join(dir, 'lib/runtime/src/testing'))).toBe(false);
    expect(existsSync(path.join(dir, 'lib/runtime/src/execa-hooktools.js'))).toBe(true);
    expect(yaml.load(readFileSync(path.join(dir, 'metadata.yaml'), 'utf8'))).toMatchObject({ name: charm });
    expect(yaml.load(readFileSync(path.join(dir, 'manifest.yaml'), 'utf8'))).toMatchObject({
      bases: [{ name: 'ubuntu', channel: '24.04', architectures: ['amd64'] }, { name: 'ubuntu', channel: '26.04', architectures: ['amd64'] }],
    });
  });

  it('k8s: hooks/install without Node installs the snap from the channel with the hook tools, then runs the charm on the snap\'s Node', async () => {
    const juju = createFakeJuju();
    juju.respond('is-leader', 'false');
    juju.respond('config-get', '{"channel": "1.36/stable"}');
    juju.respond('config-get', '"1.36/stable"', { args: ['channel', '--format=json'] });
    juju.respond('state-get', 'null', { args: ['dying', '--format=json'] });
    juju.respond('state-get', '{}');
    juju.respond('relation-ids', '[]');
    const snapNode = path.join(juju.binDir, '..', 'snap', 'k8s', 'current', 'bin', 'node');
    const result = await runDispatch('k8s', juju, {
      JUJU_DISPATCH_PATH: 'hooks/install',
      JUJU_UNIT_NAME: 'k8s/0',
      K8S_CHARM_NODE_BIN: snapNode,
      FAKE_SNAP_NODE_LINK: snapNode,
      FAKE_SNAP_NODE_TARGET: process.execPath,
    });
    expect(result).toEqual({ exitCode: 0, stderr: '' });
    const calls = juju.calls();
    expect(calls.slice(0, 5)).toEqual([
      'state-get dying --format=json',
      'resource-get snap-installation',
      'config-get channel --format=json',
      'status-set --application=false maintenance Installing k8s snap',
      'snap install k8s --classic --channel 1.36/stable',
    ]);
    expect(calls.filter((line) => line.startsWith('snap install'))).toHaveLength(1);
    expect(calls).toContain('snap refresh --hold k8s');
    expect(calls).toContain('application-version-set v1.36.0');
    expect(calls.at(-1)).toBe("status-set --application=false waiting Waiting for the 'cluster' peer relation");
  });

  it('k8s: without Node, a resource or a channel, the unit is Blocked saying what to attach or set, and the hook succeeds', async () => {
    const juju = createFakeJuju();
    juju.respond('state-get', 'null', { args: ['dying', '--format=json'] });
    juju.respond('config-get', '""', { args: ['channel', '--format=json'] });
    const result = await runDispatch('k8s', juju, { JUJU_DISPATCH_PATH: 'hooks/install', JUJU_UNIT_NAME: 'k8s/0', K8S_CHARM_NODE_BIN: '/nonexistent/node' });
    expect(result.exitCode).toBe(0);
    expect(juju.calls()).toContain(
      "status-set --application=false blocked No k8s snap: attach the 'snap-installation' resource (a k8s .snap, or a tarball holding one) or set the 'channel' option",
    );
    expect(juju.calls().some((line) => line.startsWith('snap install'))).toBe(false);
  });

  it('k8s: an action without Node fails through action-fail', async () => {
    const juju = createFakeJuju();
    const result = await runDispatch('k8s', juju, { JUJU_DISPATCH_PATH: 'actions/get-kubeconfig', JUJU_ACTION_NAME: 'get-kubeconfig', JUJU_UNIT_NAME: 'k8s/0', K8S_CHARM_NODE_BIN: '/nonexistent/node' });
    expect(result.exitCode).toBe(0);
    expect(juju.calls()).toEqual(['action-fail the k8s snap is not installed on this unit (it brings the Node runtime this charm runs on)']);
  });

  it('k8s: actions/get-kubeconfig runs `k8s config` and returns it with action-set', async () => {
    const juju = createFakeJuju();
    const k8s = path.join(juju.binDir, 'k8s');
    symlinkSync(FAKE_HOOK_TOOL, k8s);
    juju.respond('action-get', '{"server": "https://10.0.0.5:6443"}');
    juju.respond('k8s', 'apiVersion: v1\nkind: Config\n', { args: ['config', '--server', 'https://10.0.0.5:6443'] });
    const result = await runDispatch('k8s', juju, {
      JUJU_DISPATCH_PATH: 'actions/get-kubeconfig',
      JUJU_ACTION_NAME: 'get-kubeconfig',
      JUJU_UNIT_NAME: 'k8s/0',
      K8S_CHARM_K8S_CMD: k8s,
    });
    expect(result.exitCode).toBe(0);
    expect(juju.calls()).toEqual(['action-get --format=json', 'k8s config --server https://10.0.0.5:6443', 'action-set kubeconfig=apiVersion: v1\nkind: Config\n'].flatMap((line) => line.split('\n')).filter((line) => line !== ''));
  });

  it('k8s-worker: the out-of-band update_status dispatch reconciles and reports the missing integration', async () => {
    const juju = createFakeJuju();
    juju.respond('config-get', '{"channel": "1.36/stable", "node-labels": "", "kubelet-extra-args": "", "kube-proxy-extra-args": "", "fips": false}');
    juju.respond('state-get', '{}');
    juju.respond('relation-ids', '[]');
    const result = await runDispatch('k8s-worker', juju, { JUJU_DISPATCH_PATH: 'update_status', JUJU_UNIT_NAME: 'k8s-worker/3' });
    expect(result.exitCode).toBe(0);
    expect(juju.calls().at(-1)).toBe('status-set --application=false blocked Missing cluster integration');
  });

  it('exits non-zero with an explanation when run outside a hook context', async () => {
    const juju = createFakeJuju();
    const result = await runDispatch('k8s', juju, { JUJU_DISPATCH_PATH: 'hooks/install' });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/JUJU_UNIT_NAME is not set/);
  });
});

describe('charmcraft parts', () => {
  it.each(['k8s', 'k8s-worker'])('%s: pack.sh --prebuild lays out, inside the charm folder, the tree the dump part copies (no metadata: charmcraft writes it)', async (charm) => {
    const root = mkdtempSync(path.join(tmpdir(), 'charm-prebuilt-'));
    try {
      const result = await execa('bash', [packScript, '--prebuild', '--prebuilt-root', root, charm], { reject: false });
      expect(result.exitCode, String(result.stderr)).toBe(0);
      const part = (yaml.load(readFileSync(fileURLToPath(new URL(`../${charm}/charmcraft.yaml`, import.meta.url)), 'utf8')) as { parts: Record<string, { plugin: string; source: string }> }).parts.charm;
      expect(part).toMatchObject({ plugin: 'dump', source: 'prebuilt' });
      const tree = path.join(root, charm, part?.source ?? '');
      expect(String(result.stdout).trim()).toBe(tree);
      for (const file of ['dispatch', 'bin/install-snap', 'package.json', `lib/${charm}/src/main.js`, 'lib/k8s-common/src/cos.js', 'node_modules/execa/package.json']) {
        expect(existsSync(path.join(tree, file)), file).toBe(true);
      }
      expect(statSync(path.join(tree, 'dispatch')).mode & 0o111).not.toBe(0);
      for (const file of ['metadata.yaml', 'config.yaml', 'actions.yaml', 'manifest.yaml', 'bin/node', 'lib/runtime/src/testing']) {
        expect(existsSync(path.join(tree, file)), file).toBe(false);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 300_000);
});
