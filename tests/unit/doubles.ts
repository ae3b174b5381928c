// Test doubles at the daemon's seams: a Host whose facts a test sets, a ServiceManager that
// records what a flow asked of it instead of running anything, the CA rotation's datastore
// records held in memory, and the nodes of a key rotation. Files still go to a real directory (the
// test's K8S_ROOT), so what a flow writes or removes can be checked.
import type { CaRotationRecord, PkiRecord } from '../../src/datastore/state.js';
import type { HostFacts } from '../../src/host/host.js';
import type { RotationState } from '../../src/k8sd/flows/rotate-ca.js';
import type { KeyHolder, KeyRotationDeps } from '../../src/k8sd/flows/rotate-keys.js';
import { silentLogger } from '../../src/log.js';
import type { ClusterRotationPlan, EncryptionKeys, EncryptionKeySummary } from '../../src/security/index.js';
import type { Layout } from '../../src/layout.js';
import type { Host } from '../../src/services/host.js';
import type { ServiceManager, ServiceStatus } from '../../src/services/manager.js';
import type { ServiceId } from '../../src/services/specs.js';
import type { CaMaterial } from '../../src/pki/signer.js';

export type ServiceCall = `${'start' | 'stop' | 'restart'} ${ServiceId}`;

export class FakeServiceManager implements ServiceManager {
  readonly backend = 'supervisor' as const;
  /** Every call, in order, e.g. "start etcd". */
  readonly calls: ServiceCall[] = [];
  private readonly running = new Set<ServiceId>();

  /** `failing`: services whose start throws, as a binary that exits at once would. */
  constructor(private readonly failing: ReadonlySet<ServiceId> = new Set()) {}

  async start(name: ServiceId): Promise<void> {
    this.calls.push(`start ${name}`);
    if (this.failing.has(name)) throw new Error(`${name}: exited at once (test double)`);
    this.running.add(name);
  }

  async stop(name: ServiceId): Promise<void> {
    this.calls.push(`stop ${name}`);
    this.running.delete(name);
  }

  async restart(name: ServiceId): Promise<void> {
    this.calls.push(`restart ${name}`);
    this.running.add(name);
  }

  async status(name: ServiceId): Promise<ServiceStatus> {
    return { name, state: this.running.has(name) ? 'running' : 'stopped', restarts: 0 };
  }

  async stopAll(): Promise<void> {
    for (const name of [...this.running]) await this.stop(name);
  }

  /** No earlier k8sd left anything running. */
  async reapStale(): Promise<void> {}
}

export interface FakeHostOptions {
  hostname?: string;
  address?: string;
  cgroupVersion?: 1 | 2;
  /** "address:port" pairs that are taken. */
  portsInUse?: string[];
  /** Ports something listens on (any address), beside those of portsInUse. */
  listening?: number[];
  services?: FakeServiceManager;
}

export class FakeHost implements Host, HostFacts {
  readonly services: FakeServiceManager;

  constructor(
    readonly layout: Layout,
    private readonly opts: FakeHostOptions = {},
  ) {
    this.services = opts.services ?? new FakeServiceManager();
  }

  hostname(): string {
    return this.opts.hostname ?? 'node-1';
  }

  defaultAddress(): string {
    return this.opts.address ?? '10.0.0.5';
  }

  localAddresses(): string[] {
    return [this.defaultAddress(), '127.0.0.1'];
  }

  cgroupVersion(): 1 | 2 {
    return this.opts.cgroupVersion ?? 2;
  }

  async portFree(address: string, port: number): Promise<boolean> {
    return !(this.opts.portsInUse ?? []).includes(`${address}:${port}`);
  }

  async listening(port: number): Promise<boolean> {
    return (this.opts.listening ?? []).includes(port) || (this.opts.portsInUse ?? []).some((p) => p.endsWith(`:${port}`));
  }
}

/** The PKI record and the CA rotation record in memory; `writes` lists every change, in order. */
export class FakeRotationState implements RotationState {
  /** e.g. "put-rotation reissue done=cp-1", "put-pki", "delete-rotation". */
  readonly writes: string[] = [];

  /** `failing`: the write that throws, as an unreachable datastore would. */
  constructor(
    public pki: PkiRecord,
    public rotation?: CaRotationRecord,
    private readonly failing?: 'put-pki' | 'put-rotation',
  ) {}

  async getPki(): Promise<PkiRecord | undefined> {
    return this.pki;
  }

  async putPki(p: PkiRecord): Promise<void> {
    this.writes.push('put-pki');
    if (this.failing === 'put-pki') throw new Error('etcdserver: request timed out (test double)');
    this.pki = p;
  }

  async getCaRotation(): Promise<CaRotationRecord | undefined> {
    return this.rotation;
  }

  async createCaRotation(r: CaRotationRecord): Promise<boolean> {
    this.writes.push(`create-rotation ${r.id}`);
    if (this.rotation) return false;
    this.rotation = r;
    return true;
  }

  async putCaRotation(r: CaRotationRecord): Promise<void> {
    this.writes.push(`put-rotation ${r.phase} done=${r.done.join(',')}${r.lastError ? ` stopped-on=${r.lastError.node}` : ''}`);
    if (this.failing === 'put-rotation') throw new Error('etcdserver: request timed out (test double)');
    this.rotation = r;
  }

  async deleteCaRotation(): Promise<void> {
    this.writes.push('delete-rotation');
    this.rotation = undefined;
  }
}

export type KeyHolderCall = 'keys' | 'stage' | 'activate' | 'discard';

/**
 * A control-plane node in a key rotation: records each call in a log shared by the cluster's
 * doubles ("cp-2 stage k2"), and fails the calls named in `failing` as an unreachable k8sd would.
 */
export class FakeKeyHolder implements KeyHolder {
  constructor(
    readonly name: string,
    private readonly calls: string[],
    private readonly failing: ReadonlySet<KeyHolderCall> = new Set(),
  ) {}

  private record(call: KeyHolderCall, keyId?: string): void {
    this.calls.push(`${this.name} ${call}${keyId ? ` ${keyId}` : ''}`);
    if (this.failing.has(call)) throw new Error(`${this.name}: connection refused (test double)`);
  }

  private summaryOf(writeKeyId: string): EncryptionKeySummary {
    return { provider: 'aesgcm', writeKeyId, keyIds: [writeKeyId], stagedKeyIds: [] };
  }

  async keys(): Promise<EncryptionKeys> {
    this.record('keys');
    return { provider: 'aesgcm', keys: [] };
  }

  async summary(): Promise<EncryptionKeySummary> {
    return this.summaryOf('k1');
  }

  async stage(_keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary> {
    this.record('stage', keyId);
    return this.summaryOf('k1');
  }

  async activate(_keys: EncryptionKeys, keyId: string): Promise<EncryptionKeySummary> {
    this.record('activate', keyId);
    return this.summaryOf(keyId);
  }

  async discard(keyId: string): Promise<EncryptionKeySummary> {
    this.record('discard', keyId);
    return this.summaryOf('k1');
  }
}

/**
 * A key rotation's dependencies over fake nodes: this node ("cp-1") and its peers, a cluster lock
 * and a planner that each record into `calls` too. `failing` gives a node's failing calls.
 */
export function fakeKeyRotation(peers: string[], failing: Record<string, KeyHolderCall[]> = {}): { deps: KeyRotationDeps; calls: string[] } {
  const calls: string[] = [];
  const holder = (name: string): FakeKeyHolder => new FakeKeyHolder(name, calls, new Set(failing[name] ?? []));
  const plan: ClusterRotationPlan = {
    provider: 'aesgcm',
    previousKeyId: 'k1',
    newKeyId: 'k2',
    staged: { provider: 'aesgcm', keys: [] },
    active: { provider: 'aesgcm', keys: [] },
    abandoned: [],
    outOfSync: [],
  };
  const deps: KeyRotationDeps = {
    log: silentLogger(),
    takeLock: async () => (calls.push('lock'), 'lease-1'),
    releaseLock: async (lease) => void calls.push(`unlock ${lease}`),
    controlPlane: async () => ({ self: holder('cp-1'), peers: peers.map(holder) }),
    planRotation: async (collected) => (calls.push(`plan from ${collected.map((c) => c.node).join(',')}`), plan),
  };
  return { deps, calls };
}

/** A stand-in CA: its "certificate" and "key" are names, enough for code that only moves them around. */
export const fakeCa = (name: string): CaMaterial => ({ cert: `${name}-cert`, key: `${name}-key` });

/** A CA rotation record in its trust phase, old CAs "old-*", new ones "new-*"; `over` replaces fields. */
export function caRotationRecord(over: Partial<CaRotationRecord> = {}): CaRotationRecord {
  return {
    id: 'r1',
    startedAt: '2026-01-01T00:00:00Z',
    startedOn: 'cp1',
    phase: 'trust',
    done: [],
    old: { ca: fakeCa('old-ca'), 'client-ca': fakeCa('old-client'), 'front-proxy-ca': fakeCa('old-proxy'), 'kubelet-ca': fakeCa('old-kubelet') },
    fresh: { ca: fakeCa('new-ca'), 'client-ca': fakeCa('new-client'), 'front-proxy-ca': fakeCa('new-proxy'), 'kubelet-ca': fakeCa('new-kubelet') },
    crossSignedCa: 'cross',
    crossSignedKubeletCa: 'cross-kubelet',
    ...over,
  };
}
