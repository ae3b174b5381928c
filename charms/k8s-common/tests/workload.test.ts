import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createFakeJuju, removeFakeJujus, FAKE_HOOK_TOOL, FAKE_SNAP, type FakeJuju } from '../../tests/fixtures/fake-juju.js';
import {
  commandOptionsFromEnv,
  ExecaK8sCli,
  ExecaK8sSnap,
  parseClusterStatus,
  runsKubelet,
  parseJoinTokenNames,
  parseSnapList,
  NodeNotClusteredError,
  WorkloadCommandError,
  WorkloadOutputError,
} from '../src/workload.js';

afterAll(removeFakeJujus);

describe('ExecaK8sSnap (K8S_CHARM_SNAP_CMD)', () => {
  it('installs k8s classic from a channel, holds it, reports its version and removes it', async () => {
    const juju = createFakeJuju();
    const snap = new ExecaK8sSnap(commandOptionsFromEnv({ ...juju.env, K8S_CHARM_SNAP_CMD: FAKE_SNAP }));
    expect(await snap.info()).toBeUndefined();
    await snap.install({ kind: 'channel', channel: '1.33/stable' });
    expect(await snap.info()).toEqual({ version: 'v1.36.0', held: false });
    await snap.hold();
    expect(await snap.info()).toEqual({ version: 'v1.36.0', held: true });
    await snap.remove();
    expect(await snap.info()).toBeUndefined();
    expect(juju.calls().filter((line) => !line.startsWith('snap list'))).toEqual([
      'snap install k8s --classic --channel 1.33/stable',
      'snap refresh --hold k8s',
      'snap remove k8s --purge',
    ]);
  });

  it('installs a resource .snap with --dangerous --classic', async () => {
    const juju = createFakeJuju();
    const snap = new ExecaK8sSnap(commandOptionsFromEnv({ ...juju.env, K8S_CHARM_SNAP_CMD: FAKE_SNAP }));
    const file = path.join(juju.binDir, 'k8s_1.36_amd64.snap');
    writeFileSync(file, 'hsqs and the rest of a squashfs image');
    await snap.install({ kind: 'file', resource: file, size: 1, mtimeMs: 1, sha256: 'x' });
    expect(juju.calls()).toEqual([`snap install ${file} --dangerous --classic`]);
    expect(await snap.info()).toEqual({ version: 'v1.36.0', held: false });
  });

  it('defaults to snap and /snap/bin/k8s (the unit agent has no /snap/bin on PATH)', () => {
    expect(commandOptionsFromEnv({})).toMatchObject({ snapCommand: 'snap', k8sCommand: '/snap/bin/k8s' });
  });
});

describe('ExecaK8sCli (K8S_CHARM_K8S_CMD)', () => {
  let juju: FakeJuju;
  let k8s: ExecaK8sCli;

  beforeEach(() => {
    juju = createFakeJuju();
    const command = path.join(juju.binDir, 'k8s');
    symlinkSync(FAKE_HOOK_TOOL, command);
    k8s = new ExecaK8sCli(commandOptionsFromEnv({ ...juju.env, K8S_CHARM_K8S_CMD: command }));
  });

  it('bootstraps with the YAML on stdin', async () => {
    await k8s.bootstrap('pod-cidr: 10.1.0.0/16\n', { name: 'node-0', address: '10.0.0.5' });
    expect(juju.calls()).toEqual(['k8s bootstrap --file - --name node-0 --address 10.0.0.5', 'stdin: pod-cidr: 10.1.0.0/16']);
  });

  it('reads status as JSON', async () => {
    juju.respond('k8s', JSON.stringify({ ready: true, 'node-name': 'node-0', role: 'control-plane', members: [{ name: 'node-0' }, 'node-1'] }));
    expect(await k8s.status()).toEqual({ ready: true, nodeName: 'node-0', role: 'control-plane', members: ['node-0', 'node-1'] });
    expect(juju.calls()).toEqual(['k8s status --output-format json']);
  });

  it('gets, lists and revokes join tokens', async () => {
    juju.respond('k8s', 'eyJ0b2tlbiI6ImFiYyJ9\n');
    expect(await k8s.getJoinToken('worker-0', true)).toBe('eyJ0b2tlbiI6ImFiYyJ9');
    juju.respond('k8s', '[{"name":"worker-0","worker":true}]');
    expect(await k8s.listJoinTokens()).toEqual(['worker-0']);
    await k8s.revokeJoinToken('worker-0');
    expect(juju.calls()).toEqual([
      'k8s get-join-token worker-0 --worker',
      'k8s list-join-tokens --output-format json',
      'k8s revoke-join-token worker-0',
    ]);
  });

  it('joins with the token in a 0600 file, never in argv, and removes the file afterwards', async () => {
    await k8s.joinCluster('s3cr3t-token', { name: 'worker-0', address: '10.0.0.7' }, 'extra-node-kubelet-args: {}\n');
    const calls = juju.calls();
    expect(calls.join('\n')).not.toContain('s3cr3t-token');
    const m = /^k8s join-cluster --token-file (\S+) --name worker-0 --address 10\.0\.0\.7 --file -$/.exec(calls[0] ?? '');
    expect(m, calls[0]).not.toBeNull();
    expect(calls[1]).toBe('stdin: extra-node-kubelet-args: {}');
    expect(existsSync(m![1]!)).toBe(false);
    expect(existsSync(path.dirname(m![1]!))).toBe(false);
  });

  it('the token file holds the token, mode 0600, while k8s runs', async () => {
    // A k8s that reports what it finds at --token-file.
    const seen = path.join(juju.dir, 'seen');
    const command = path.join(juju.binDir, 'k8s-probe');
    writeFileSync(command, `#!/bin/sh\nwhile [ "$1" != --token-file ]; do shift; done\nstat -c %a "$2" > ${seen}\nstat -c %a "$(dirname "$2")" >> ${seen}\ncat "$2" >> ${seen}\n`, { mode: 0o755 });
    const probe = new ExecaK8sCli(commandOptionsFromEnv({ ...juju.env, K8S_CHARM_K8S_CMD: command }));
    await probe.joinCluster('s3cr3t-token', { name: 'worker-0', address: '10.0.0.7' });
    expect(readFileSync(seen, 'utf8')).toBe('600\n700\ns3cr3t-token\n');
  });

  it('never shows the token in an error, and removes the file after a failed join', async () => {
    juju.respond('k8s', '', { exit: { code: 1, stderr: 'Error: token s3cr3t-token is invalid\n' } });
    const error = await k8s.joinCluster('s3cr3t-token', { name: 'worker-0', address: '10.0.0.7' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkloadCommandError);
    expect(String(error)).not.toContain('s3cr3t-token');
    expect(String(error)).toContain("'/");
    expect(String(error)).toMatch(/join-cluster --token-file \S+ --name worker-0 --address 10.0.0.7/);
    expect(String(error)).toContain('Error: token <redacted> is invalid');
    const file = /--token-file (\S+)/.exec(juju.calls()[0] ?? '')![1]!;
    expect(existsSync(file)).toBe(false);
  });

  it('removes nodes, refreshes certificates, sets features, labels nodes and prints kubeconfigs', async () => {
    await k8s.removeNode('worker-0', true);
    await k8s.refreshCerts('1y', ['a.example.com', '10.0.0.9']);
    await k8s.setClusterConfig({ 'dns.enabled': 'false' });
    await k8s.labelNode('node-0', { team: 'a' }, ['old']);
    juju.respond('k8s', 'apiVersion: v1\n');
    expect(await k8s.kubeconfig('https://lb:443')).toBe('apiVersion: v1\n');
    expect(juju.calls()).toEqual([
      'k8s remove-node worker-0 --force',
      'k8s refresh-certs --expires-in 1y --extra-sans a.example.com --extra-sans 10.0.0.9',
      'k8s set dns.enabled=false',
      'k8s kubectl label node node-0 team=a old- --overwrite',
      'k8s config --server https://lb:443',
    ]);
  });
});

describe('parsers for k8s and snap output', () => {
  it('parses `snap list k8s`, held or not', () => {
    const header = 'Name  Version  Rev   Tracking     Publisher   Notes\n';
    expect(parseSnapList(`${header}k8s   v1.36.0  4242  latest/edge  canonical** classic,held\n`)).toEqual({ version: 'v1.36.0', held: true });
    expect(parseSnapList(`${header}k8s   v1.36.0  4242  latest/edge  canonical** classic\n`)).toEqual({ version: 'v1.36.0', held: false });
    expect(parseSnapList(header)).toBeUndefined();
  });

  it('rejects status output it cannot use, saying what it expected', () => {
    expect(() => parseClusterStatus('{"members": []}')).toThrow(WorkloadOutputError);
    expect(() => parseClusterStatus('Error: not bootstrapped')).toThrow(/printed something other than JSON/);
    expect(parseClusterStatus('{"ready": false, "role": "worker"}')).toEqual({ ready: false, nodeName: '', role: 'worker', members: [] });
    expect(() => parseClusterStatus('{"ready": false, "role": "none", "node-name": "n0"}')).toThrow(NodeNotClusteredError);
  });

  it("reads members at the top level or under 'datastore' (as src/cli's status prints them)", () => {
    const status = { ready: true, 'node-name': 'n0', role: 'control-plane', datastore: { type: 'etcd', members: [{ name: 'n0', address: '10.0.0.5', role: 'voter' }] } };
    expect(parseClusterStatus(JSON.stringify(status)).members).toEqual(['n0']);
  });

  it("reads this node's services, and whether it runs a kubelet, from src/cli's status", () => {
    const service = (name: string) => ({ name, state: 'running', restarts: 0, pid: 1 });
    const controlPlane = { ready: true, 'node-name': 'n0', role: 'control-plane', services: ['etcd', 'kube-apiserver'].map(service) };
    const parsed = parseClusterStatus(JSON.stringify(controlPlane));
    expect(parsed.services).toEqual(['etcd', 'kube-apiserver']);
    expect(runsKubelet(parsed)).toBe(false);
    expect(runsKubelet(parseClusterStatus(JSON.stringify({ ...controlPlane, services: [service('kubelet')] })))).toBe(true);
    // No list (Canonical k8s prints none), or an empty one, says nothing: assume a kubelet.
    expect(parseClusterStatus('{"ready": true, "role": "worker"}').services).toBeUndefined();
    expect(runsKubelet(parseClusterStatus('{"ready": true, "role": "worker"}'))).toBe(true);
    expect(runsKubelet(parseClusterStatus('{"ready": true, "role": "worker", "services": []}'))).toBe(true);
  });

  it('accepts the join-token list as names, objects or {tokens}', () => {
    expect(parseJoinTokenNames('')).toEqual([]);
    expect(parseJoinTokenNames('["a","b"]')).toEqual(['a', 'b']);
    expect(parseJoinTokenNames('{"tokens":[{"name":"a"}]}')).toEqual(['a']);
    expect(() => parseJoinTokenNames('{"x":1}')).toThrow(/a JSON list of tokens/);
  });
});
