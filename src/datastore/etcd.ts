// etcd client over etcd's v3 JSON gateway (served on the client port), with mutual TLS.
// k8sd needs only KV, transactions for compare-and-set, and the cluster member API,
// all of which the gateway exposes; this avoids a gRPC etcd client dependency.
import https from 'node:https';
import { readFileSync } from 'node:fs';

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
}

export interface EtcdMember {
  id: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export class EtcdError extends Error {
  constructor(message: string, readonly code?: number) {
    super(message);
    this.name = 'EtcdError';
  }
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString() : '');

/** The end of the key range that covers every key with this prefix. */
function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      buf[i]!++;
      return buf.subarray(0, i + 1).toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

interface RawKv { key?: string; value?: string; mod_revision?: string; create_revision?: string }
interface RawMember { ID?: string; name?: string; peerURLs?: string[]; clientURLs?: string[]; isLearner?: boolean }

export class EtcdClient {
  private readonly agent: https.Agent;

  constructor(
    private readonly endpoints: string[],
    tls: EtcdTls,
    private readonly timeoutMs = 5000,
  ) {
    this.agent = new https.Agent({ ca: tls.ca, cert: tls.cert, key: tls.key, keepAlive: true, maxSockets: 8, minVersion: 'TLSv1.2' });
  }

  static fromFiles(endpoints: string[], files: { ca: string; cert: string; key: string }, timeoutMs?: number): EtcdClient {
    return new EtcdClient(endpoints, { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') }, timeoutMs);
  }

  close(): void {
    this.agent.destroy();
  }

  private async callOne(endpoint: string, path: string, body: unknown): Promise<unknown> {
    const url = new URL(path, endpoint);
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: { error?: string; message?: string; code?: number } & Record<string, unknown> = {};
            try {
              parsed = text ? JSON.parse(text) : {};
            } catch {
              return reject(new EtcdError(`etcd ${path}: unexpected reply (${res.statusCode}): ${text.slice(0, 200)}`));
            }
            if ((res.statusCode ?? 500) >= 400 || parsed.error) {
              return reject(new EtcdError(`etcd ${path}: ${parsed.message ?? parsed.error ?? res.statusCode}`, parsed.code));
            }
            resolve(parsed);
          });
        },
      );
      req.on('timeout', () => req.destroy(new EtcdError(`etcd ${path}: no answer from ${endpoint} within ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(err instanceof EtcdError ? err : new EtcdError(`etcd ${endpoint}: ${err.message}`)));
      req.end(payload);
    });
  }

  /** Tries each endpoint in turn; server-side errors (with a gRPC code) are not retried elsewhere. */
  private async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    let last: unknown;
    for (const ep of this.endpoints) {
      try {
        return (await this.callOne(ep, path, body)) as Record<string, unknown>;
      } catch (err) {
        last = err;
        if (err instanceof EtcdError && err.code !== undefined && err.code !== 14) throw err;
      }
    }
    throw last instanceof Error ? last : new EtcdError(`etcd ${path}: no endpoint answered`);
  }

  async get(key: string): Promise<string | undefined> {
    const r = (await this.call('/v3/kv/range', { key: b64(key) })) as { kvs?: RawKv[] };
    return r.kvs?.length ? unb64(r.kvs[0]!.value) : undefined;
  }

  async getWithRevision(key: string): Promise<{ value: string; modRevision: string } | undefined> {
    const r = (await this.call('/v3/kv/range', { key: b64(key) })) as { kvs?: RawKv[] };
    const kv = r.kvs?.[0];
    return kv ? { value: unb64(kv.value), modRevision: kv.mod_revision ?? '0' } : undefined;
  }

  async list(prefix: string): Promise<Record<string, string>> {
    const r = (await this.call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) })) as { kvs?: RawKv[] };
    return Object.fromEntries((r.kvs ?? []).map((kv) => [unb64(kv.key), unb64(kv.value)]));
  }

  /** Raw bytes of a key (for checking encryption at rest). */
  async getRaw(key: string): Promise<Buffer | undefined> {
    const r = (await this.call('/v3/kv/range', { key: b64(key) })) as { kvs?: RawKv[] };
    return r.kvs?.length ? Buffer.from(r.kvs[0]!.value ?? '', 'base64') : undefined;
  }

  async put(key: string, value: string): Promise<void> {
    await this.call('/v3/kv/put', { key: b64(key), value: b64(value) });
  }

  async delete(key: string): Promise<number> {
    const r = (await this.call('/v3/kv/deleterange', { key: b64(key) })) as { deleted?: string };
    return Number(r.deleted ?? 0);
  }

  async deletePrefix(prefix: string): Promise<number> {
    const r = (await this.call('/v3/kv/deleterange', { key: b64(prefix), range_end: prefixEnd(prefix) })) as { deleted?: string };
    return Number(r.deleted ?? 0);
  }

  /** Creates key only if absent. Returns false when it already exists. */
  async create(key: string, value: string, leaseId?: string): Promise<boolean> {
    const put: Record<string, string> = { key: b64(key), value: b64(value) };
    if (leaseId) put.lease = leaseId;
    const r = (await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: put }],
    })) as { succeeded?: boolean };
    return Boolean(r.succeeded);
  }

  /** Deletes key only if it still holds this exact value (single-use tokens). */
  async deleteIfValue(key: string, value: string): Promise<boolean> {
    const r = (await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(value) }],
      success: [{ request_delete_range: { key: b64(key) } }],
    })) as { succeeded?: boolean };
    return Boolean(r.succeeded);
  }

  /** Puts key (on leaseId, if given) only while it holds this exact value. */
  async putIfValue(key: string, expected: string, value: string, leaseId?: string): Promise<boolean> {
    const put: Record<string, string> = { key: b64(key), value: b64(value) };
    if (leaseId) put.lease = leaseId;
    const r = (await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'VALUE', result: 'EQUAL', value: b64(expected) }],
      success: [{ request_put: put }],
    })) as { succeeded?: boolean };
    return Boolean(r.succeeded);
  }

  /** Drops every revision older than `revision` from the keyspace (old values stop being readable). */
  async compact(revision: string): Promise<void> {
    await this.call('/v3/kv/compaction', { revision, physical: true });
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    const r = (await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) })) as { ID?: string };
    if (!r.ID) throw new EtcdError('etcd did not return a lease id');
    return r.ID;
  }

  async revokeLease(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }

  async members(): Promise<EtcdMember[]> {
    const r = (await this.call('/v3/cluster/member/list', { linearizable: true })) as { members?: RawMember[] };
    return (r.members ?? []).map((m) => ({
      id: m.ID ?? '',
      name: m.name ?? '',
      peerURLs: m.peerURLs ?? [],
      clientURLs: m.clientURLs ?? [],
      isLearner: Boolean(m.isLearner),
    }));
  }

  async addLearner(peerUrl: string): Promise<{ member: EtcdMember; members: EtcdMember[] }> {
    const r = (await this.call('/v3/cluster/member/add', { peerURLs: [peerUrl], isLearner: true })) as { member?: RawMember; members?: RawMember[] };
    const map = (m: RawMember): EtcdMember => ({ id: m.ID ?? '', name: m.name ?? '', peerURLs: m.peerURLs ?? [], clientURLs: m.clientURLs ?? [], isLearner: Boolean(m.isLearner) });
    return { member: map(r.member ?? {}), members: (r.members ?? []).map(map) };
  }

  async promote(id: string): Promise<void> {
    await this.call('/v3/cluster/member/promote', { ID: id });
  }

  /**
   * Removes a member. etcd refuses a removal while the member serving it has not been connected to
   * a quorum of the remaining voters for its health interval (5 s: "unhealthy cluster"), which is
   * routine right after a join or a restart; such refusals are retried until `retryForMs` runs out.
   */
  async removeMember(id: string, retryForMs = 30_000): Promise<void> {
    const deadline = Date.now() + retryForMs;
    for (;;) {
      try {
        await this.call('/v3/cluster/member/remove', { ID: id });
        return;
      } catch (err) {
        if (!isTransientReconfigRefusal(err) || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  async health(): Promise<boolean> {
    try {
      await this.call('/v3/maintenance/status', {});
      return true;
    } catch {
      return false;
    }
  }

  async status(endpoint: string): Promise<{ version: string; leader: string; memberId: string; isLearner: boolean }> {
    const r = (await this.callOne(endpoint, '/v3/maintenance/status', {})) as { version?: string; leader?: string; header?: { member_id?: string }; isLearner?: boolean };
    return { version: r.version ?? '', leader: r.leader ?? '', memberId: r.header?.member_id ?? '', isLearner: Boolean(r.isLearner) };
  }
}

/** etcd's refusals of a membership change that go away once the members have talked for a few seconds. */
export function isTransientReconfigRefusal(err: unknown): boolean {
  return /unhealthy cluster|not enough started members/i.test((err as Error)?.message ?? '');
}
