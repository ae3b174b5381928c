// The bootstrap flow's steps on a fake Host: what it refuses before anything is written or started.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateBootstrapConfig } from '../../src/config/bootstrap.js';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { writeLocalNode } from '../../src/datastore/state.js';
import { bootstrap, SecurityProvider } from '../../src/k8sd/flows/bootstrap.js';
import type { StepEvent } from '../../src/api/index.js';
import { Layout } from '../../src/layout.js';
import { createLogger } from '../../src/log.js';
import { PkiWrappingKeyFile } from '../../src/pki/key-wrap.js';
import { FakeHost, FakeServiceManager } from './doubles.js';

const noSecurity: SecurityProvider = { files: async () => [], apiserverArgs: () => ({}), beforeApiserver: async () => undefined, stop: async () => undefined };

function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

describe('the bootstrap flow on a fake host', () => {
  let root: string;
  let host: FakeHost;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'k8s-flow-'));
    host = new FakeHost(new Layout({ K8S_ROOT: root }));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const run = async (events: StepEvent[]): Promise<unknown> => {
    const crypto = new NodeCryptoBackend();
    return bootstrap(
      {
        host,
        crypto,
        log: createLogger('test', path.join(root, 'test.log')),
        identity: { cert: '', key: '', fingerprint: '' },
        security: noSecurity,
        fipsEnabled: false,
        pkiKeys: new PkiWrappingKeyFile(path.join(root, 'pki-wrapping.key'), () => crypto),
      },
      { config: validateBootstrapConfig({}), name: 'node-1', address: '10.0.0.5', timeoutMs: 10_000 },
      (e) => events.push(e),
    ).catch((err: Error) => err);
  };

  it('refuses a node that is already a member at its first step: nothing started, written or rolled back', async () => {
    writeLocalNode(host.layout, { name: 'node-1', address: '10.0.0.5', role: 'worker', clusterPort: 6400, etcdEndpoints: [] });
    const before = tree(root);
    const events: StepEvent[] = [];
    const err = await run(events);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^bootstrap failed at step "preflight": .*node-1/);
    expect(events).toEqual([{ type: 'step', step: 'preflight', title: 'Checking the node' }]);
    expect(host.services.calls).toEqual([]);
    expect(tree(root).filter((f) => f !== 'test.log')).toEqual(before);
  });

  it('refuses a taken port at preflight, naming the address, the port and the component', async () => {
    host = new FakeHost(host.layout, { portsInUse: ['10.0.0.5:6443'] });
    const events: StepEvent[] = [];
    const err = await run(events);
    expect((err as Error).message).toMatch(/step "preflight": port 10\.0\.0\.5:6443 \(kube-apiserver\) is already in use/);
    expect(host.services.calls).toEqual([]);
  });

  it('a datastore that does not start: the steps done are undone in reverse, and nothing is left on the host', async () => {
    const before = tree(root);
    host = new FakeHost(host.layout, { services: new FakeServiceManager(new Set(['etcd'])) });
    const events: StepEvent[] = [];
    const err = await run(events);
    expect((err as Error).message).toBe('bootstrap failed at step "start-datastore": etcd: exited at once (test double)');
    expect(events.map((e) => `${e.type} ${e.step}`)).toEqual([
      'step preflight',
      'step pki',
      'step write-config',
      'step pod-network',
      'step start-datastore',
      'rollback start-datastore',
      'rollback pod-network',
      'rollback write-config',
    ]);
    expect(host.services.calls).toEqual(['start etcd', 'stop etcd']);
    expect(tree(root).filter((f) => f !== 'test.log')).toEqual(before);
  });
});
