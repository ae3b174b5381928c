// The bootstrap flow's steps on a fake Host: what it refuses before anything is written or started.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateBootstrapConfig } from '../../src/config/bootstrap.js';
import { NodeCryptoBackend } from '../../src/crypto/node.js';
import { writeLocalNode } from '../../src/datastore/state.js';
import { bootstrap, bootstrapSteps, SecurityProvider } from '../../src/k8sd/flows/bootstrap.js';
import { waitListening } from '../../src/k8sd/flows/node-steps.js';
import { listensOn } from '../../src/host/host.js';
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

describe('the bootstrap steps around the datastore', () => {
  const names = (t: 'etcd' | 'external'): string[] => bootstrapSteps(t).map((s) => s.name);

  it('managed etcd: kube-apiserver starts while etcd comes up, and k8sd stores the state before waiting for /readyz', () => {
    expect(names('etcd')).toEqual(['preflight', 'pki', 'write-config', 'pod-network', 'start-datastore', 'start-control-plane', 'store-state', 'control-plane-ready', 'start-node', 'mark-bootstrapped']);
  });

  it('an external datastore is checked for an earlier cluster before any kube-apiserver starts against it', () => {
    expect(names('external')).toEqual(['preflight', 'pki', 'write-config', 'pod-network', 'start-datastore', 'store-state', 'start-control-plane', 'start-node', 'mark-bootstrapped']);
  });
});

describe('waiting for a service to listen', () => {
  const host = new FakeHost(new Layout({ K8S_ROOT: os.tmpdir() }), { listening: [2379] });
  const alive = async (): Promise<string | undefined> => undefined;

  it('returns once the port listens', async () => {
    await expect(waitListening(host, 'etcd', 2379, 1000, alive)).resolves.toBeUndefined();
  });

  it('fails with the crash report when the service keeps exiting', async () => {
    await expect(waitListening(host, 'etcd', 2380, 5000, async () => 'etcd keeps exiting (exit 1); see etcd.log')).rejects.toThrow('etcd keeps exiting (exit 1); see etcd.log');
  });

  it('gives up at its deadline, naming the service and the port', async () => {
    await expect(waitListening(host, 'etcd', 2380, 50, alive)).rejects.toThrow(/^etcd did not listen on port 2380 within 0 s; see its log$/);
  });
});

describe("reading the kernel's TCP tables", () => {
  // /proc/net/tcp: etcd listening on 127.0.0.1:2379 (0x094B) and an established connection on 2380 (0x094C).
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:094B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0500000A:094C 0600000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1',
  ].join('\n');

  it('finds a listener by port, on any address', () => expect(listensOn(table, 2379)).toBe(true));
  it('does not count a connected socket as a listener', () => expect(listensOn(table, 2380)).toBe(false));
  it('does not match the header or a port not there', () => expect(listensOn(table, 6443)).toBe(false));
});
