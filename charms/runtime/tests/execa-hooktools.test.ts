import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { HookToolError, HookToolOutputError } from '../src/errors.js';
import { ExecaHookTools } from '../src/execa-hooktools.js';
import { createFakeJuju, removeFakeJujus, type FakeJuju } from '../../tests/fixtures/fake-juju.js';

afterAll(removeFakeJujus);

describe('ExecaHookTools against fake hook tools', () => {
  let juju: FakeJuju;
  let tools: ExecaHookTools;

  beforeEach(() => {
    juju = createFakeJuju();
    tools = new ExecaHookTools({ env: juju.env });
  });

  it('asks every tool that prints for --format=json and parses the result', async () => {
    juju.respond('config-get', '{"port": 8080, "name": "x", "debug": false, "nested": {"a": 1}}\n');
    juju.respond('is-leader', 'true\n');
    juju.respond('relation-ids', '["cluster:3"]\n');
    juju.respond('relation-list', '["k8s/1","k8s/2"]\n');
    juju.respond('relation-get', '{"node-name":"n1"}\n');
    juju.respond('action-get', '{"server":"https://x:6443"}\n');
    juju.respond('state-get', '{"dying":"true"}\n');

    expect(await tools.configGet()).toEqual({ port: 8080, name: 'x', debug: false });
    expect(await tools.isLeader()).toBe(true);
    expect(await tools.relationIds('cluster')).toEqual(['cluster:3']);
    expect(await tools.relationList('cluster:3')).toEqual(['k8s/1', 'k8s/2']);
    expect(await tools.relationGet('cluster:3', { owner: 'k8s/1', app: false })).toEqual({ 'node-name': 'n1' });
    expect(await tools.relationGet('cluster:3', { owner: 'k8s', app: true })).toEqual({ 'node-name': 'n1' });
    expect(await tools.actionGet()).toEqual({ server: 'https://x:6443' });
    expect(await tools.stateGet()).toEqual({ dying: 'true' });

    expect(juju.calls()).toEqual([
      'config-get --format=json',
      'is-leader --format=json',
      'relation-ids cluster --format=json',
      'relation-list -r cluster:3 --format=json',
      'relation-get -r cluster:3 - k8s/1 --format=json',
      'relation-get -r cluster:3 --app - k8s --format=json',
      'action-get --format=json',
      'state-get --format=json',
    ]);
  });

  it('reads the remote application with relation-list --app', async () => {
    juju.respond('relation-list', '"k8s-worker"\n');
    expect(await tools.relationRemoteApp('k8s-cluster:7')).toBe('k8s-worker');
    expect(juju.calls()).toEqual(['relation-list -r k8s-cluster:7 --app --format=json']);
  });

  it('writes relation data and stored state as JSON on stdin', async () => {
    await tools.relationSet('cluster:3', { joined: 'k8s-1', gone: '' }, false);
    await tools.relationSet('cluster:3', { 'cluster-name': 'k8s-1' }, true);
    await tools.stateSet({ dying: 'true' });
    expect(juju.calls()).toEqual([
      'relation-set -r cluster:3 --file -',
      'stdin: {"joined":"k8s-1","gone":""}',
      'relation-set -r cluster:3 --app --file -',
      'stdin: {"cluster-name":"k8s-1"}',
      'state-set --file -',
      'stdin: {"dying":"true"}',
    ]);
  });

  it('sets status, version, ports, logs and action results with the documented arguments', async () => {
    await tools.statusSet('waiting', 'Waiting for k8sd', false);
    await tools.statusSet('active', '', true);
    await tools.applicationVersionSet('v1.36.0');
    await tools.openPort({ protocol: 'tcp', port: 6443 });
    await tools.closePort({ protocol: 'udp', port: 8000, toPort: 8100 });
    await tools.openPort({ protocol: 'icmp' });
    await tools.jujuLog('WARNING', '-starts with a dash');
    await tools.actionSet({ kubeconfig: 'apiVersion: v1', 'a.b': '1' });
    await tools.actionLog('step 1');
    await tools.actionFail('it broke');
    await tools.stateDelete('dying');
    expect(juju.calls()).toEqual([
      'status-set --application=false waiting Waiting for k8sd',
      'status-set --application=true active ',
      'application-version-set v1.36.0',
      'open-port 6443/tcp',
      'close-port 8000-8100/udp',
      'open-port icmp',
      'juju-log --log-level WARNING -- -starts with a dash',
      'action-set kubeconfig=apiVersion: v1 a.b=1',
      'action-log step 1',
      'action-fail it broke',
      'state-delete dying',
    ]);
  });

  it('parses network-get into camel-cased addresses', async () => {
    juju.respond(
      'network-get',
      JSON.stringify({
        'bind-addresses': [{ 'mac-address': '00:16:3e:00:00:01', 'interface-name': 'eth0', addresses: [{ hostname: '', value: '10.0.0.5', cidr: '10.0.0.0/24' }] }],
        'egress-subnets': ['10.0.0.5/32'],
        'ingress-addresses': ['10.0.0.5'],
      }),
    );
    expect(await tools.networkGet('cluster', 'cluster:3')).toEqual({
      bindAddresses: [{ interfaceName: 'eth0', macAddress: '00:16:3e:00:00:01', addresses: [{ value: '10.0.0.5', cidr: '10.0.0.0/24' }] }],
      ingressAddresses: ['10.0.0.5'],
      egressSubnets: ['10.0.0.5/32'],
    });
    expect(juju.calls()).toEqual(['network-get cluster -r cluster:3 --format=json']);
  });

  it('passes secret content through 0600 files, never argv, and reads secrets as JSON', async () => {
    juju.respond('secret-add', 'secret:cs000000000000000042\n');
    juju.respond('secret-get', '{"token":"abc","attempt":"1"}');
    const id = await tools.secretAdd({ token: 'abc', attempt: '1' }, { description: 'join token', owner: 'application' });
    expect(id).toBe('secret:cs000000000000000042');
    expect(await tools.secretGet(id, { refresh: true })).toEqual({ token: 'abc', attempt: '1' });
    await tools.secretSet(id, { token: 'def', attempt: '2' });
    await tools.secretGrant(id, 'k8s-cluster:7', 'k8s-worker/0');
    await tools.secretRevoke(id, 'k8s-cluster:7');
    await tools.secretRemove(id, 1);
    await tools.secretRemove(id);

    const calls = juju.calls();
    expect(calls.join('\n')).not.toMatch(/=abc|=def/);
    expect(calls[0]).toMatch(/^secret-add --description join token --owner application token#file=\/\S+\/token attempt#file=\/\S+\/attempt$/);
    expect(calls.slice(1)).toEqual([
      `secret-get ${id} --refresh --format=json`,
      expect.stringMatching(new RegExp(`^secret-set ${id} token#file=\\S+ attempt#file=\\S+$`)),
      `secret-grant ${id} -r k8s-cluster:7 --unit k8s-worker/0`,
      `secret-revoke ${id} -r k8s-cluster:7`,
      `secret-remove ${id} --revision 1`,
      `secret-remove ${id}`,
    ]);
  });

  it('raises HookToolError with the tool, exit code and stderr when a tool fails', async () => {
    juju.respond('relation-set', '', { exit: { code: 1, stderr: 'ERROR cannot write relation settings\n' } });
    const error = await tools.relationSet('cluster:3', { a: 'b' }, true).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HookToolError);
    expect(error).toMatchObject({ tool: 'relation-set', exitCode: 1 });
    expect(String(error)).toContain("hook tool 'relation-set' failed (exit 1): ERROR cannot write relation settings");
  });

  it('raises HookToolOutputError on output that is not the documented JSON', async () => {
    juju.respond('is-leader', 'maybe\n');
    await expect(tools.isLeader()).rejects.toBeInstanceOf(HookToolOutputError);
    juju.respond('secret-get', 'not json with a password');
    const error = await tools.secretGet('secret:x').catch((e: unknown) => e);
    expect(String(error)).not.toContain('password');
  });

  it('explains a missing tool', async () => {
    const bare = new ExecaHookTools({ env: { PATH: '/nonexistent' } });
    await expect(bare.isLeader()).rejects.toThrow(/hook tool 'is-leader' failed/);
  });
});
