// Who may call the cluster API: the fingerprints of the members' cluster certificates, cached, so
// that a request costs a map lookup and not a datastore read plus a parse of every certificate.
// The cache is dropped when this node changes the node records or peers.json, expires after
// `ttlMs` (changes made on another control-plane node), and an unknown fingerprint reloads it at
// most once per `missReloadMs` (a member that just joined elsewhere), so callers with unknown
// certificates cannot make k8sd read the datastore more than once a second.
import { statSync } from 'node:fs';

export type MemberRole = 'control-plane' | 'worker';

export interface TrustedPeerSources {
  /** Fingerprint → role of the node records in the datastore; undefined where there is no datastore (workers). */
  members(): Promise<Map<string, MemberRole> | undefined>;
  /** Fingerprint → role of the members in peers.json. */
  peers(): Map<string, MemberRole>;
  /** peers.json, to notice when it was rewritten. */
  peersFile: string;
  /** Changes whenever this process wrote a node record. */
  generation(): number;
}

interface Snapshot {
  at: number;
  generation: number;
  peersStamp: string;
  members: Map<string, MemberRole> | undefined;
  peers: Map<string, MemberRole>;
}

export class TrustedPeers {
  private snapshot?: Snapshot;
  private loading?: Promise<Snapshot>;
  private lastMissReload = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly sources: TrustedPeerSources,
    private readonly options: { ttlMs: number; missReloadMs: number } = { ttlMs: 10_000, missReloadMs: 1_000 },
    private readonly now: () => number = Date.now,
  ) {}

  invalidate(): void {
    this.snapshot = undefined;
  }

  /** The role of the member with this certificate fingerprint in the datastore's node records. */
  async memberRole(fingerprint: string | undefined): Promise<MemberRole | undefined> {
    if (!fingerprint) return undefined;
    return this.lookup(fingerprint, (s) => s.members?.get(fingerprint));
  }

  /** True for a control-plane member, by peers.json or (on control-plane nodes) the node records. */
  async isControlPlane(fingerprint: string | undefined): Promise<boolean> {
    if (!fingerprint) return false;
    const role = await this.lookup(fingerprint, (s) => (s.peers.get(fingerprint) === 'control-plane' ? 'control-plane' : s.members?.get(fingerprint)));
    return role === 'control-plane';
  }

  private async lookup(fingerprint: string, find: (s: Snapshot) => MemberRole | undefined): Promise<MemberRole | undefined> {
    const found = find(await this.current());
    if (found || this.now() - this.lastMissReload < this.options.missReloadMs) return found;
    this.lastMissReload = this.now();
    this.snapshot = undefined;
    return find(await this.current());
  }

  private async current(): Promise<Snapshot> {
    const s = this.snapshot;
    if (s && this.now() - s.at < this.options.ttlMs && s.generation === this.sources.generation() && s.peersStamp === this.peersStamp()) return s;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<Snapshot> {
    const at = this.now();
    const generation = this.sources.generation();
    const peersStamp = this.peersStamp();
    const snapshot: Snapshot = { at, generation, peersStamp, members: await this.sources.members(), peers: this.sources.peers() };
    this.snapshot = snapshot;
    return snapshot;
  }

  private peersStamp(): string {
    try {
      const st = statSync(this.sources.peersFile);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}
