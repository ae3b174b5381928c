import { afterAll, describe, expect, it } from 'vitest';
import type { Charm, HookEvent } from '../src/charm.js';
import { dispatch } from '../src/dispatch.js';
import { createFakeJuju, removeFakeJujus } from '../../tests/fixtures/fake-juju.js';

afterAll(removeFakeJujus);

function recordingCharm(events: HookEvent[], fail?: Error): Charm {
  return {
    async onHook(event, model) {
      events.push(event);
      if (fail) throw fail;
      await model.setUnitStatus('active', 'Ready');
    },
    actions: {
      hello: async (action) => action.setResults({ said: 'hello' }),
    },
  };
}

describe('dispatch', () => {
  it('runs hooks/<hook> through the real hook tools and exits 0', async () => {
    const juju = createFakeJuju();
    const events: HookEvent[] = [];
    const code = await dispatch(recordingCharm(events), { env: { ...juju.env, JUJU_DISPATCH_PATH: 'hooks/start', JUJU_UNIT_NAME: 'k8s/0' } });
    expect(code).toBe(0);
    expect(events).toEqual([{ name: 'start', outOfBand: false }]);
    expect(juju.calls()).toEqual(['status-set --application=false active Ready']);
  });

  it('accepts the bare out-of-band form sent by a timer through juju-exec', async () => {
    const juju = createFakeJuju();
    const events: HookEvent[] = [];
    await dispatch(recordingCharm(events), { env: { ...juju.env, JUJU_DISPATCH_PATH: 'update_status', JUJU_UNIT_NAME: 'k8s/0' } });
    expect(events).toEqual([{ name: 'update-status', outOfBand: true }]);
  });

  it('runs actions/<action> and fails unknown actions through action-fail', async () => {
    const juju = createFakeJuju();
    const env = { ...juju.env, JUJU_UNIT_NAME: 'k8s/0' };
    expect(await dispatch(recordingCharm([]), { env: { ...env, JUJU_DISPATCH_PATH: 'actions/hello' } })).toBe(0);
    expect(await dispatch(recordingCharm([]), { env: { ...env, JUJU_DISPATCH_PATH: 'actions/bye' } })).toBe(0);
    expect(juju.calls()).toEqual([
      'action-get --format=json',
      'action-set said=hello',
      "action-fail this charm has no action 'bye'; see 'juju actions <application>'",
    ]);
  });

  it('exits 1 on a charm error, logging it to Juju so the hook is retried', async () => {
    const juju = createFakeJuju();
    const lines: string[] = [];
    const code = await dispatch(recordingCharm([], new Error('boom')), {
      env: { ...juju.env, JUJU_DISPATCH_PATH: 'hooks/install', JUJU_UNIT_NAME: 'k8s/0' },
      stderr: (line) => lines.push(line),
    });
    expect(code).toBe(1);
    expect(juju.calls()).toEqual(['juju-log --log-level ERROR -- k8s/0 hooks/install failed: boom']);
    expect(lines.join('\n')).toContain('boom');
  });

  it('exits 2 with an explanation outside a hook context', async () => {
    const lines: string[] = [];
    const code = await dispatch(recordingCharm([]), { env: { JUJU_DISPATCH_PATH: 'hooks/install' }, stderr: (line) => lines.push(line) });
    expect(code).toBe(2);
    expect(lines).toEqual([expect.stringMatching(/^JUJU_UNIT_NAME is not set: dispatch must run inside a Juju hook context/)]);
  });
});
