import { describe, expect, it } from 'vitest';
import { DispatchPathError, JujuEnvironmentError } from '../src/errors.js';
import { hookEventFrom } from '../src/charm.js';
import { parseDispatchPath, readJujuContext, relationEventKind } from '../src/juju-context.js';

describe('parseDispatchPath', () => {
  it.each([
    ['hooks/install', { kind: 'hook', name: 'install' }],
    ['hooks/cluster-relation-changed', { kind: 'hook', name: 'cluster-relation-changed' }],
    ['./hooks/update-status', { kind: 'hook', name: 'update-status' }],
    ['actions/get-kubeconfig', { kind: 'action', name: 'get-kubeconfig' }],
    ['update_status', { kind: 'out-of-band', name: 'update-status' }],
    ['update-status', { kind: 'out-of-band', name: 'update-status' }],
  ])('%s', (path, expected) => {
    expect(parseDispatchPath(path)).toEqual(expected);
  });

  it.each(['', 'hooks/', 'hooks/a/b', '/etc/passwd', 'actions/Get'])('rejects %j with a message that shows the accepted forms', (path) => {
    expect(() => parseDispatchPath(path)).toThrow(DispatchPathError);
    expect(() => parseDispatchPath(path)).toThrow(/hooks\/<hook>', 'actions\/<action>' or a bare event name/);
  });
});

describe('readJujuContext', () => {
  const base = { JUJU_DISPATCH_PATH: 'hooks/install', JUJU_UNIT_NAME: 'k8s-worker/12' };

  it('reads the unit, model and placement variables', () => {
    const context = readJujuContext({
      ...base,
      JUJU_MODEL_NAME: 'prod',
      JUJU_MODEL_UUID: '2f6a5c1e-0000-4000-8000-000000000001',
      JUJU_CHARM_DIR: '/var/lib/juju/agents/unit-k8s-worker-12/charm',
      JUJU_VERSION: '3.6.4',
      JUJU_MACHINE_ID: '4',
      JUJU_AVAILABILITY_ZONE: 'zone-b',
      JUJU_CHARM_HTTPS_PROXY: 'http://proxy:3128',
      JUJU_CHARM_NO_PROXY: '10.0.0.0/8',
    });
    expect(context).toMatchObject({
      target: { kind: 'hook', name: 'install' },
      unitName: 'k8s-worker/12',
      appName: 'k8s-worker',
      unitNumber: 12,
      modelName: 'prod',
      modelUuid: '2f6a5c1e-0000-4000-8000-000000000001',
      charmDir: '/var/lib/juju/agents/unit-k8s-worker-12/charm',
      jujuVersion: '3.6.4',
      machineId: '4',
      availabilityZone: 'zone-b',
      proxy: { https: 'http://proxy:3128', noProxy: '10.0.0.0/8' },
    });
    expect(context.relation).toBeUndefined();
  });

  it('reads a relation-departed context, including the departing unit', () => {
    const context = readJujuContext({
      ...base,
      JUJU_DISPATCH_PATH: 'hooks/cluster-relation-departed',
      JUJU_RELATION: 'cluster',
      JUJU_RELATION_ID: 'cluster:3',
      JUJU_REMOTE_APP: 'k8s',
      JUJU_REMOTE_UNIT: 'k8s/1',
      JUJU_DEPARTING_UNIT: 'k8s-worker/12',
    });
    expect(context.relation).toEqual({ endpoint: 'cluster', id: 'cluster:3', remoteApp: 'k8s', remoteUnit: 'k8s/1', departingUnit: 'k8s-worker/12' });
    expect(hookEventFrom(context).relation?.kind).toBe('departed');
  });

  it('reads action and secret contexts', () => {
    const action = readJujuContext({ ...base, JUJU_DISPATCH_PATH: 'actions/refresh-certs', JUJU_ACTION_NAME: 'refresh-certs', JUJU_ACTION_UUID: '42' });
    expect(action.action).toEqual({ name: 'refresh-certs', uuid: '42' });
    const secret = readJujuContext({
      ...base,
      JUJU_DISPATCH_PATH: 'hooks/secret-remove',
      JUJU_SECRET_ID: 'secret:cs000000000000000001',
      JUJU_SECRET_LABEL: 'token',
      JUJU_SECRET_REVISION: '3',
    });
    expect(secret.secret).toEqual({ id: 'secret:cs000000000000000001', label: 'token', revision: 3 });
  });

  it('treats a bare dispatch path as an out-of-band event', () => {
    const context = readJujuContext({ ...base, JUJU_DISPATCH_PATH: 'update_status' });
    expect(hookEventFrom(context)).toEqual({ name: 'update-status', outOfBand: true });
  });

  it('names the missing or malformed variable', () => {
    expect(() => readJujuContext({ JUJU_UNIT_NAME: 'k8s/0' })).toThrow(new JujuEnvironmentError('JUJU_DISPATCH_PATH', 'is not set'));
    expect(() => readJujuContext({ JUJU_DISPATCH_PATH: 'hooks/install' })).toThrow(/JUJU_UNIT_NAME is not set/);
    expect(() => readJujuContext({ ...base, JUJU_UNIT_NAME: 'k8s' })).toThrow(/JUJU_UNIT_NAME is 'k8s', not '<application>\/<number>'/);
  });

  it('tells relation event kinds apart from hooks that only look similar', () => {
    expect(relationEventKind('k8s-cluster-relation-broken', 'k8s-cluster')).toBe('broken');
    expect(relationEventKind('cluster-relation-changed', 'k8s-cluster')).toBeUndefined();
    expect(relationEventKind('config-changed', 'cluster')).toBeUndefined();
  });
});
