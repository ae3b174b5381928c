// Re-encrypting all Secrets with no-op replaces, against an in-memory Secrets API.
import { ApiException, type V1Secret, type V1SecretList } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ReencryptError } from '../../src/security/errors.js';
import { reencryptSecrets, type ReencryptProgress, type SecretsApi } from '../../src/security/reencrypt.js';

interface FakeOptions {
  /** Secrets that answer 409 on their first replace (someone else updated them). */
  conflictOnce?: Set<string>;
  /** Secrets deleted just before the replace. */
  deleted?: Set<string>;
  /** Secrets whose replace is refused (e.g. a webhook). */
  refused?: Set<string>;
  /** Expire the continue token after this many pages, once. */
  expireAfterPages?: number;
}

class FakeSecrets implements SecretsApi {
  readonly secrets: V1Secret[];
  readonly replaced: string[] = [];
  readonly listCalls: Array<{ limit?: number; _continue?: string }> = [];
  private pagesServed = 0;
  private expired = false;

  constructor(count: number, private readonly options: FakeOptions = {}) {
    this.secrets = Array.from({ length: count }, (_, i) => ({
      metadata: { name: `s${i}`, namespace: i % 2 ? 'default' : 'kube-system', uid: `uid-${i}`, resourceVersion: String(100 + i) },
      type: 'Opaque',
      data: { password: Buffer.from(`secret-${i}`).toString('base64') },
    }));
  }

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  async listSecretForAllNamespaces(param: { limit?: number; _continue?: string } = {}): Promise<V1SecretList> {
    this.listCalls.push({ ...param });
    const start = param._continue ? Number(param._continue) : 0;
    if (param._continue && this.options.expireAfterPages !== undefined && !this.expired && this.pagesServed >= this.options.expireAfterPages) {
      this.expired = true;
      throw new ApiException(410, 'Gone: the provided continue parameter is too old', {}, {});
    }
    this.pagesServed++;
    const limit = param.limit ?? this.secrets.length;
    const items = this.secrets.slice(start, start + limit);
    const next = start + limit < this.secrets.length ? String(start + limit) : undefined;
    return {
      apiVersion: 'v1',
      kind: 'SecretList',
      items: items.map((s) => structuredClone(s)),
      metadata: { ...(next ? { _continue: next, remainingItemCount: this.secrets.length - start - limit } : {}) },
    };
  }

  async readNamespacedSecret(param: { name: string; namespace: string }): Promise<V1Secret> {
    const found = this.secrets.find((s) => s.metadata?.name === param.name && s.metadata?.namespace === param.namespace);
    if (!found) throw new ApiException(404, 'not found', {}, {});
    return structuredClone(found);
  }

  async replaceNamespacedSecret(param: { name: string; namespace: string; body: V1Secret }): Promise<V1Secret> {
    const key = this.key(param.namespace, param.name);
    if (this.options.deleted?.has(key)) throw new ApiException(404, 'not found', {}, {});
    if (this.options.refused?.has(key)) throw new ApiException(403, 'admission webhook "deny" denied the request', {}, {});
    const stored = this.secrets.find((s) => s.metadata?.name === param.name && s.metadata?.namespace === param.namespace)!;
    if (this.options.conflictOnce?.delete(key)) {
      stored.metadata!.resourceVersion = String(Number(stored.metadata!.resourceVersion) + 1000);
      throw new ApiException(409, 'the object has been modified', {}, {});
    }
    if (param.body.metadata?.resourceVersion !== stored.metadata?.resourceVersion) throw new ApiException(409, 'conflict', {}, {});
    // A no-op replace: the body must be the stored object unchanged.
    expect(param.body.data).toEqual(stored.data);
    expect(param.body).toMatchObject({ apiVersion: 'v1', kind: 'Secret' });
    this.replaced.push(key);
    return structuredClone(stored);
  }
}

describe('reencryptSecrets', () => {
  it('replaces every Secret in every namespace, page by page', async () => {
    const api = new FakeSecrets(25);
    const progress: ReencryptProgress[] = [];
    const report = await reencryptSecrets(api, { pageSize: 10, concurrency: 3, onProgress: (p) => progress.push(p) });
    expect(report.rewritten).toBe(25);
    expect(report.failed).toEqual([]);
    expect(new Set(api.replaced).size).toBe(25);
    expect(api.listCalls.map((c) => c._continue)).toEqual([undefined, '10', '20']);
    expect(api.listCalls.every((c) => c.limit === 10)).toBe(true);
    expect(progress[progress.length - 1]).toEqual({ total: 25, rewritten: 25, skipped: 0, failed: 0 });
    expect(progress.every((p) => p.total >= p.rewritten)).toBe(true);
  });

  it('retries conflicts with a fresh read, skips deleted Secrets, reports refused ones', async () => {
    const api = new FakeSecrets(6, {
      conflictOnce: new Set(['default/s1']),
      deleted: new Set(['kube-system/s2']),
      refused: new Set(['default/s3']),
    });
    const report = await reencryptSecrets(api, { pageSize: 4 });
    expect(report.rewritten).toBe(4);
    expect(report.skipped).toBe(1);
    expect(report.conflictsRetried).toBe(1);
    expect(report.failed).toEqual([{ namespace: 'default', name: 's3', reason: expect.stringMatching(/^HTTP 403/) }]);
  });

  it('restarts the listing when the continue token expires, without rewriting twice', async () => {
    const api = new FakeSecrets(30, { expireAfterPages: 1 });
    const report = await reencryptSecrets(api, { pageSize: 10 });
    expect(report.listRestarts).toBe(1);
    expect(report.rewritten).toBe(30);
    expect(api.replaced).toHaveLength(30);
    expect(new Set(api.replaced).size).toBe(30);
  });

  it('fails with an actionable error when listing is refused', async () => {
    const api = new FakeSecrets(3);
    api.listSecretForAllNamespaces = async () => { throw new ApiException(403, 'forbidden', {}, {}); };
    await expect(reencryptSecrets(api)).rejects.toThrow(ReencryptError);
    await expect(reencryptSecrets(api)).rejects.toThrow(/HTTP 403.*run it again/);
  });

  it('stops when aborted, saying it can be re-run', async () => {
    const api = new FakeSecrets(10);
    const controller = new AbortController();
    controller.abort();
    await expect(reencryptSecrets(api, { signal: controller.signal })).rejects.toThrow(/aborted.*idempotent/);
  });

  it('never logs Secret data', async () => {
    const api = new FakeSecrets(4, { refused: new Set(['default/s1']) });
    const logged: string[] = [];
    const logger = { info: (m: string, meta?: object) => logged.push(m + JSON.stringify(meta)), warn: (m: string, meta?: object) => logged.push(m + JSON.stringify(meta)), error: (m: string, meta?: object) => logged.push(m + JSON.stringify(meta)) };
    await reencryptSecrets(api, { logger });
    const text = logged.join('\n');
    for (const s of api.secrets) expect(text).not.toContain(s.data!.password!);
  });
});
