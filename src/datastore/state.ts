// k8sd's cluster state, kept in etcd under its own key prefix (no second database),
// and the small local record that says this node belongs to a cluster.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../host/files.js';
import { Layout } from '../layout.js';
import { CaName, RotatedCaName } from '../pki/table.js';
import { CaMaterial } from '../pki/signer.js';
import { openCaSet, openValue, PkiKeyWrapError, PkiWrappingKeyFile, sealCaSet, WRAPPED_VALUE_PREFIX } from '../pki/key-wrap.js';
import { KeyAlgorithm } from '../crypto/types.js';
import { EtcdClient } from './etcd.js';
import { FeatureSettings, legacyFeatureSettings, withFeatureDefaults } from '../config/features.js';
import type { SnapshotSettings } from '../snapshots/schedule.js';

export const PREFIX = '/k8sd/';

export interface ClusterConfig {
  podCidr: string;
  serviceCidr: string;
  securePort: number;
  etcdPort: number;
  etcdPeerPort: number;
  datastoreType: 'etcd' | 'external';
  datastoreServers: string[];
  clusterDomain: string;
  dnsServiceIp?: string;
  keyType: KeyAlgorithm;
  fips: boolean;
  failCgroupV1: boolean;
  auditLevel: 'Policy' | 'Metadata' | 'None';
  podSecurity: { enforce: string; audit: string; warn: string; exemptNamespaces: string[] };
  secretsEncryption: 'kms' | 'aesgcm' | 'none';
  extraSans: string[];
  /** Leaf lifetime and renewal policy for certificates k8sd issues. */
  certificates: { lifetimeMs: number; renewFraction: number; renewBeforeMs: number; checkIntervalMs: number };
  createdAt: string;
  /** cluster-config: the features and their settings (`k8s set`/`k8s get`). Absent in clusters from before features. */
  features?: FeatureSettings;
  /** Taints control-plane nodes register with. */
  controlPlaneTaints?: string[];
  /** Scheduled etcd snapshots (`etcd-snapshot.*`); absent means the defaults. */
  etcdSnapshot?: SnapshotSettings;
}

/** The feature settings of a cluster (clusters bootstrapped before features have every feature off). */
export function featuresOf(c: Pick<ClusterConfig, 'features' | 'serviceCidr' | 'clusterDomain' | 'dnsServiceIp'>): FeatureSettings {
  if (c.features) return withFeatureDefaults(c.features);
  const d = legacyFeatureSettings(c.serviceCidr);
  d.dns['cluster-domain'] = c.clusterDomain;
  if (c.dnsServiceIp) d.dns['service-ip'] = c.dnsServiceIp;
  return d;
}

/** The feature status k8sd records for `k8s status`. */
export interface FeatureStatusRecord {
  enabled: boolean;
  ready: boolean;
  message: string;
  version: string;
  updatedAt: string;
}

export interface NodeRecord {
  name: string;
  address: string;
  role: 'control-plane' | 'worker';
  /** PEM of the node's k8sd cluster certificate (port 6400); members trust each other by it. */
  clusterCert: string;
  joinedAt: string;
}

export interface TokenRecord {
  name: string;
  role: 'control-plane' | 'worker';
  /** SHA-256 of the token secret, hex. The secret itself is never stored. */
  secretHash: string;
  expiresAt: string;
  createdAt: string;
}

/** The cluster PKI. In etcd every CA key and the service-account key are wrapped (src/pki/key-wrap.ts); ClusterState hands out and takes plaintext. */
export interface PkiRecord {
  cas: Record<CaName, CaMaterial>;
  serviceAccountKey: string;
}

const PKI_KEY = `${PREFIX}pki/cluster`;
const CA_ROTATION_KEY = `${PREFIX}pki/ca-rotation`;
/** Datastore slots the wrapped keys are bound to (AES-GCM associated data). */
const SLOT = { cas: 'pki/cluster/cas', serviceAccount: 'pki/cluster/service-account-key', rotationOld: 'pki/ca-rotation/old', rotationFresh: 'pki/ca-rotation/fresh' } as const;

export type CaRotationPhase = 'trust' | 'reissue' | 'retire';

/**
 * An online CA rotation in progress (`k8s rotate-certs-ca`). It holds the new CA keys until the
 * rotation completes (the PKI record holds CA keys too), and which nodes finished the current
 * phase, so that a failed rotation resumes where it stopped instead of starting another.
 */
export interface CaRotationRecord {
  id: string;
  startedAt: string;
  /** The control-plane node that started it. */
  startedOn: string;
  phase: CaRotationPhase;
  /** Nodes that finished `phase`. */
  done: string[];
  old: Record<RotatedCaName, CaMaterial>;
  fresh: Record<RotatedCaName, CaMaterial>;
  /** The new server CA cross-signed by the old one (served after new serving leaves until the old CA retires). */
  crossSignedCa: string;
  /** The same for the kubelet CA: sent after new kubelet serving certificates, for apiservers that trust only the old one. */
  crossSignedKubeletCa?: string;
  lastError?: { phase: CaRotationPhase; node: string; message: string; at: string };
}

let nodeWrites = 0;
/** Counts writes of node records by this process (the cluster API's trusted-peer cache watches it). */
export function nodeRecordsGeneration(): number {
  return nodeWrites;
}

/** Typed access to the /k8sd/ prefix. */
export class ClusterState {
  /** `pkiKeys`: the PKI wrapping key of this control-plane node; every CA key read or written here goes through it. */
  constructor(readonly etcd: EtcdClient, readonly pkiKeys: PkiWrappingKeyFile) {}

  async getConfig(): Promise<ClusterConfig | undefined> {
    const v = await this.etcd.get(`${PREFIX}cluster/config`);
    return v ? (JSON.parse(v) as ClusterConfig) : undefined;
  }
  async putConfig(c: ClusterConfig): Promise<void> {
    await this.etcd.put(`${PREFIX}cluster/config`, JSON.stringify(c));
  }

  async getFeatureStatus(): Promise<Record<string, FeatureStatusRecord>> {
    const out: Record<string, FeatureStatusRecord> = {};
    for (const [k, v] of Object.entries(await this.etcd.list(`${PREFIX}features/`))) out[k.slice(k.lastIndexOf('/') + 1)] = JSON.parse(v) as FeatureStatusRecord;
    return out;
  }
  async putFeatureStatus(name: string, s: FeatureStatusRecord): Promise<void> {
    await this.etcd.put(`${PREFIX}features/${name}`, JSON.stringify(s));
  }

  async getPki(): Promise<PkiRecord | undefined> {
    const v = await this.etcd.get(PKI_KEY);
    return v ? this.openPki(JSON.parse(v) as PkiRecord, { found: false }) : undefined;
  }
  async putPki(p: PkiRecord): Promise<void> {
    await this.etcd.put(PKI_KEY, JSON.stringify(await this.sealPki(p)));
  }

  async getCaRotation(): Promise<CaRotationRecord | undefined> {
    const v = await this.etcd.get(CA_ROTATION_KEY);
    return v ? this.openCaRotation(JSON.parse(v) as CaRotationRecord, { found: false }) : undefined;
  }
  /** Records a new rotation; false when one is recorded already. */
  async createCaRotation(r: CaRotationRecord): Promise<boolean> {
    return this.etcd.create(CA_ROTATION_KEY, JSON.stringify(await this.sealCaRotation(r)));
  }
  async putCaRotation(r: CaRotationRecord): Promise<void> {
    await this.etcd.put(CA_ROTATION_KEY, JSON.stringify(await this.sealCaRotation(r)));
  }
  async deleteCaRotation(): Promise<void> {
    await this.etcd.delete(CA_ROTATION_KEY);
  }

  /**
   * Migration of a cluster from before key wrapping: rewrites the PKI and CA-rotation records with
   * every plaintext key wrapped (creating this node's wrapping key when the cluster has none yet).
   * Compare-and-swap, so a concurrent writer is never overwritten; then etcd's history is compacted
   * so that the old plaintext revisions cannot be read back (pages etcd freed keep their bytes until
   * `etcdctl defrag`: docs/security.md). Returns the records rewritten.
   */
  async wrapPlaintextKeys(): Promise<string[]> {
    const migrated: string[] = [];
    for (const [key, open, seal] of [
      [PKI_KEY, (v: string, l: { found: boolean }) => this.openPki(JSON.parse(v) as PkiRecord, l), (r: unknown) => this.sealPki(r as PkiRecord)],
      [CA_ROTATION_KEY, (v: string, l: { found: boolean }) => this.openCaRotation(JSON.parse(v) as CaRotationRecord, l), (r: unknown) => this.sealCaRotation(r as CaRotationRecord)],
    ] as const) {
      for (let attempt = 0; ; attempt++) {
        const raw = await this.etcd.get(key);
        // Keys are PEM in the clear, wrapped values never are.
        if (!raw || !raw.includes('PRIVATE KEY')) break;
        // Creating a wrapping key is right only while nothing in the cluster is wrapped under another one.
        if (!raw.includes(`"${WRAPPED_VALUE_PREFIX}`) && key === PKI_KEY) await this.pkiKeys.ensure();
        const plain = await open(raw, { found: false });
        if (await this.etcd.putIfValue(key, raw, JSON.stringify(await seal(plain)))) {
          migrated.push(key);
          // The plaintext stays readable in etcd's history until compacted away.
          const written = await this.etcd.getWithRevision(key);
          if (written) await this.etcd.compact(written.modRevision);
          break;
        }
        if (attempt >= 3) throw new PkiKeyWrapError(`${key} kept changing while its plaintext keys were being wrapped; restart k8sd to try again`);
      }
    }
    return migrated;
  }

  private async openPki(stored: PkiRecord, legacy: { found: boolean }): Promise<PkiRecord> {
    const w = () => this.pkiKeys.wrapper();
    return {
      ...stored,
      cas: await openCaSet(w, SLOT.cas, stored.cas, legacy),
      serviceAccountKey: await openValue(w, SLOT.serviceAccount, stored.serviceAccountKey, legacy),
    };
  }
  private async sealPki(p: PkiRecord): Promise<PkiRecord> {
    const w = await this.pkiKeys.wrapper();
    return { ...p, cas: await sealCaSet(w, SLOT.cas, p.cas), serviceAccountKey: await w.wrapPrivateKey(SLOT.serviceAccount, p.serviceAccountKey) };
  }
  private async openCaRotation(stored: CaRotationRecord, legacy: { found: boolean }): Promise<CaRotationRecord> {
    const w = () => this.pkiKeys.wrapper();
    return { ...stored, old: await openCaSet(w, SLOT.rotationOld, stored.old, legacy), fresh: await openCaSet(w, SLOT.rotationFresh, stored.fresh, legacy) };
  }
  private async sealCaRotation(r: CaRotationRecord): Promise<CaRotationRecord> {
    const w = await this.pkiKeys.wrapper();
    return { ...r, old: await sealCaSet(w, SLOT.rotationOld, r.old), fresh: await sealCaSet(w, SLOT.rotationFresh, r.fresh) };
  }

  async getNode(name: string): Promise<NodeRecord | undefined> {
    const v = await this.etcd.get(`${PREFIX}nodes/${name}`);
    return v ? (JSON.parse(v) as NodeRecord) : undefined;
  }
  async putNode(n: NodeRecord): Promise<void> {
    await this.etcd.put(`${PREFIX}nodes/${n.name}`, JSON.stringify(n));
    nodeWrites++;
  }
  async createNode(n: NodeRecord): Promise<boolean> {
    return this.etcd.create(`${PREFIX}nodes/${n.name}`, JSON.stringify(n));
  }
  async deleteNode(name: string): Promise<void> {
    await this.etcd.delete(`${PREFIX}nodes/${name}`);
    nodeWrites++;
  }
  async listNodes(): Promise<NodeRecord[]> {
    return Object.values(await this.etcd.list(`${PREFIX}nodes/`)).map((v) => JSON.parse(v) as NodeRecord);
  }

  async putTokenIfAbsent(t: TokenRecord): Promise<boolean> {
    return this.etcd.create(`${PREFIX}tokens/${t.name}`, JSON.stringify(t));
  }
  async getToken(name: string): Promise<{ record: TokenRecord; raw: string } | undefined> {
    const v = await this.etcd.get(`${PREFIX}tokens/${name}`);
    return v ? { record: JSON.parse(v) as TokenRecord, raw: v } : undefined;
  }
  /** Consumes a token atomically: only one caller can succeed. */
  async consumeToken(name: string, raw: string): Promise<boolean> {
    return this.etcd.deleteIfValue(`${PREFIX}tokens/${name}`, raw);
  }
  async deleteToken(name: string): Promise<boolean> {
    return (await this.etcd.delete(`${PREFIX}tokens/${name}`)) > 0;
  }
  async listTokens(): Promise<TokenRecord[]> {
    return Object.values(await this.etcd.list(`${PREFIX}tokens/`)).map((v) => JSON.parse(v) as TokenRecord);
  }

  /** A cluster-wide lock held through an etcd lease (joins are queued behind it). */
  async tryLock(name: string, holder: string, ttlSeconds: number): Promise<string | undefined> {
    const lease = await this.etcd.grantLease(ttlSeconds);
    if (await this.etcd.create(`${PREFIX}locks/${name}`, holder, lease)) return lease;
    await this.etcd.revokeLease(lease);
    return undefined;
  }
  async unlock(lease: string): Promise<void> {
    await this.etcd.revokeLease(lease);
  }
  /**
   * Extends a lock its holder keeps longer than one lease: the key moves to a fresh lease while it
   * still names the holder. Returns the new lease, or undefined when the lock was lost.
   */
  async renewLock(name: string, holder: string, lease: string, ttlSeconds: number): Promise<string | undefined> {
    const next = await this.etcd.grantLease(ttlSeconds);
    if (!(await this.etcd.putIfValue(`${PREFIX}locks/${name}`, holder, holder, next))) {
      await this.etcd.revokeLease(next);
      return undefined;
    }
    await this.etcd.revokeLease(lease).catch(() => undefined);
    return next;
  }
}

/** Local record: present once this node has bootstrapped or joined a cluster. */
export interface LocalNodeState {
  name: string;
  address: string;
  role: 'control-plane' | 'worker';
  clusterPort: number;
  /** etcd client endpoints k8sd uses (control plane: the local member first). */
  etcdEndpoints: string[];
  securePort: number;
  bootstrappedAt: string;
  /** Workers: the cluster's certificate renewal policy at join time (they cannot read the cluster config). */
  certificatePolicy?: ClusterConfig['certificates'];
}

export function readLocalNode(layout: Layout): LocalNodeState | undefined {
  if (!existsSync(layout.nodeStateFile)) return undefined;
  return JSON.parse(readFileSync(layout.nodeStateFile, 'utf8')) as LocalNodeState;
}

export function writeLocalNode(layout: Layout, s: LocalNodeState): void {
  writeFileAtomic(layout.nodeStateFile, JSON.stringify(s, null, 2) + '\n', 0o600);
}

export function removeLocalNode(layout: Layout): void {
  rmSync(layout.nodeStateFile, { force: true });
}
