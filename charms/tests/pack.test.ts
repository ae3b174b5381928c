// Packs both charms with charms/pack.sh, unpacks them as Juju would, and runs their dispatch
// with the bundled Node against fake hook tools, a fake `snap` and a fake `k8s`.
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

// Two .charm files and their unpacked trees are ~600 MB.
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
    env: { ...juju.env, JUJU_CHARM_DIR: dir, JUJU_MODEL_UUID: 'a1b2c3d4-0000-4000-8000-000000000000', K8S_CHARM_SNAP_CMD: FAKE_SNAP, ...env },
    extendEnv: false,
    reject: false,
  });
  return { exitCode: result.exitCode, stderr: String(result.stderr) };
}

describe('packed charms', () => {
  it.each(['k8s', 'k8s-worker'])('%s.charm holds dispatch, the metadata, the compiled charm, its modules and Node', (charm) => {
    const dir = charmDir(charm);
    for (const file of ['dispatch', 'bin/node', 'manifest.yaml', 'metadata.yaml', 'config.yaml', 'actions.yaml', 'package.json', `lib/${charm}/src/main.js`]) {
      expect(existsSync(path.join(dir, file)), file).toBe(true);
    }
    expect(statSync(path.join(dir, 'dispatch')).mode & 0o111).not.toBe(0);
    expect(statSync(path.join(dir, 'bin/node')).mode & 0o111).not.toBe(0);
    expect(existsSync(path.join(dir, 'node_modules/execa/package.json'))).toBe(true);
    expect(existsSync(path.join(dir, 'node_modules/js-yaml/package.json'))).toBe(true);
    expect(existsSync(path.join(dir, 'lib/runtime/src/testing'))).toBe(false);
    expect(existsSync(path.join(dir, 'lib/runtime/src/execa-hooktools.js'))).toBe(true);
    expect(yaml.load(readFileSync(path.join(dir, 'metadata.yaml'), 'utf8'))).toMatchObject({ name: charm });
    expect(yaml.load(readFileSync(path.join(dir, 'manifest.yaml'), 'utf8'))).toMatchObject({
      bases: [{ name: 'ubuntu', channel: '24.04', architectures: ['amd64'] }, { name: 'ubuntu', channel: '26.04', architectures: ['amd64'] }],
    });
    const version = execFileSync(path.join(dir, 'bin/node'), ['--version'], { encoding: 'utf8' }).trim();
    expect(version).toMatch(/^v24\./);
  });

  it('k8s: hooks/install installs the snap held through the hook tools', async () => {
    const juju = createFakeJuju();
    juju.respond('is-leader', 'false');
    juju.respond('config-get', '{}');
    juju.respond('state-get', '{}');
    juju.respond('relation-ids', '[]');
    const result = await runDispatch('k8s', juju, { JUJU_DISPATCH_PATH: 'hooks/install', JUJU_UNIT_NAME: 'k8s/0' });
    expect(result).toEqual({ exitCode: 0, stderr: '' });
    const calls = juju.calls();
    expect(calls).toContain('snap install k8s --classic');
    expect(calls).toContain('snap refresh --hold k8s');
    expect(calls).toContain('application-version-set v1.36.0');
    expect(calls.at(-1)).toBe("status-set --application=false waiting Waiting for the 'cluster' peer relation");
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
    juju.respond('config-get', '{"node-labels": "", "kubelet-extra-args": "", "kube-proxy-extra-args": "", "fips": false}');
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
