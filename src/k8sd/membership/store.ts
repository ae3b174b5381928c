// Membership records in the k8sd state (etcd, under /k8sd/): join tokens, the join lock,
// in-flight joins and node records. A thin layer over ClusterState for the keys only
// membership uses.
import { ClusterState, NodeRecord, PREFIX, TokenRecord } from '../../datastore/state.js';
import { JoinRole } from './token.js';

/** A token record as membership stores it. */
export interface JoinTokenRecord extends TokenRecord {
  role: JoinRole;
  /** Only a node of this name may use the token. */
  bound: boolean;
  /** Which node issued it. */
  issuedBy?: string;
  /**
   * The address the node may join with although its connections come from another one (NAT):
   * the operator's explicit opt-out of the source-address check (get-join-token --address).
   */
  address?: string;
}

/** A node record, marked while its control-plane join is between learner and promotion. */
export interface MemberRecord extends NodeRecord {
  joining?: boolean;
}

/** An in-flight control-plane join, attached to the join lock's lease (it vanishes with it). */
export interface JoinInFlight {
  name: string;
  address: string;
  memberId: string;
  lease: string;
  startedAt: string;
}

export const JOIN_LOCK = 'join';
/** The join lock's holder while a CA rotation runs: joins and removals wait until it is done. */
const CA_ROTATION_HOLDER = 'ca-rotation@';

export function caRotationLockHolder(node: string): string {
  return `${CA_ROTATION_HOLDER}${node}`;
}

/** The node running a CA rotation, when the join lock's holder is one. */
export function rotatingNode(holder: string | undefined): string | undefined {
  return holder?.startsWith(CA_ROTATION_HOLDER) ? holder.slice(CA_ROTATION_HOLDER.length) : undefined;
}
const joinKey = (name: string): string => `${PREFIX}joins/${name}`;
const lockKey = (name: string): string => `${PREFIX}locks/${name}`;

export class MembershipStore {
  constructor(readonly state: ClusterState) {}

  async createToken(t: JoinTokenRecord): Promise<boolean> {
    return this.state.putTokenIfAbsent(t);
  }
  async token(name: string): Promise<{ record: JoinTokenRecord; raw: string } | undefined> {
    const t = await this.state.getToken(name);
    if (!t) return undefined;
    const record = t.record as JoinTokenRecord;
    return { record: { ...record, bound: record.bound ?? true }, raw: t.raw };
  }
  async tokens(): Promise<JoinTokenRecord[]> {
    return (await this.state.listTokens()) as JoinTokenRecord[];
  }
  async consumeToken(name: string, raw: string): Promise<boolean> {
    return this.state.consumeToken(name, raw);
  }
  /** Puts a consumed token back, verbatim: only for a join that failed before its reply carried certificates or CA material. */
  async restoreToken(raw: string): Promise<void> {
    const record = JSON.parse(raw) as JoinTokenRecord;
    await this.state.etcd.create(`${PREFIX}tokens/${record.name}`, raw);
  }
  async revokeToken(name: string): Promise<boolean> {
    return this.state.deleteToken(name);
  }

  async member(name: string): Promise<MemberRecord | undefined> {
    return (await this.state.getNode(name)) as MemberRecord | undefined;
  }
  async members(): Promise<MemberRecord[]> {
    return (await this.state.listNodes()) as MemberRecord[];
  }
  async putMember(m: MemberRecord): Promise<void> {
    await this.state.putNode(m);
  }
  /** Records a member unless one of that name exists (false then). */
  async createMember(m: MemberRecord): Promise<boolean> {
    return this.state.createNode(m);
  }
  async deleteMember(name: string): Promise<void> {
    await this.state.deleteNode(name);
  }

  /** Takes the cluster-wide join lock; undefined while another join holds it. */
  async lockJoin(holder: string, ttlSeconds: number): Promise<string | undefined> {
    return this.state.tryLock(JOIN_LOCK, holder, ttlSeconds);
  }
  async joinLockHolder(): Promise<string | undefined> {
    return this.state.etcd.get(lockKey(JOIN_LOCK));
  }
  /** Keeps the join lock past its lease (a CA rotation holds it for minutes); undefined when it was lost. */
  async renewJoinLock(holder: string, lease: string, ttlSeconds: number): Promise<string | undefined> {
    return this.state.renewLock(JOIN_LOCK, holder, lease, ttlSeconds);
  }
  /** Releases the lock; the in-flight join record goes with the lease. */
  async unlock(lease: string): Promise<void> {
    await this.state.unlock(lease).catch(() => undefined);
  }

  async recordJoin(j: JoinInFlight): Promise<void> {
    await this.state.etcd.create(joinKey(j.name), JSON.stringify(j), j.lease);
  }
  async join(name: string): Promise<JoinInFlight | undefined> {
    const v = await this.state.etcd.get(joinKey(name));
    return v ? (JSON.parse(v) as JoinInFlight) : undefined;
  }
}
