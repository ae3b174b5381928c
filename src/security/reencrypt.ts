// Re-encrypts every Secret by replacing it with itself.
//
// The apiserver skips a no-op update only when the stored bytes are current; data read
// through a non-first provider or an old KMS key_id is "stale", so the no-op replace
// rewrites it with the current write key. Run this after a rotation has been adopted
// (KmsServer.waitForKeyAdoption) or after moving between providers.
//
// Built for large clusters (k3s#5934 failed at 8K+ Secrets): paged list, bounded
// concurrency, conflict retry, restart on an expired continue token, progress reports.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { ReencryptError } from './errors.js';
import type { SecurityLogger } from './logger.js';

/** The three CoreV1Api calls used; a real CoreV1Api satisfies it. */
export type SecretsApi = Pick<CoreV1Api, 'listSecretForAllNamespaces' | 'readNamespacedSecret' | 'replaceNamespacedSecret'>;

export interface ReencryptProgress {
  /** Best estimate of the number of Secrets (exact once the last page is read). */
  total: number;
  rewritten: number;
  skipped: number;
  failed: number;
}

export interface ReencryptOptions {
  /** Page size of the list calls. Default 100. */
  pageSize?: number;
  /** Replaces in flight at once. Default 4. */
  concurrency?: number;
  /** Retries of one Secret after 409 Conflict (someone else updated it). Default 3. */
  maxConflictRetries?: number;
  /** Restarts of the listing after 410 Gone (continue token expired). Default 5. */
  maxListRestarts?: number;
  signal?: AbortSignal;
  onProgress?: (progress: ReencryptProgress) => void;
  logger?: SecurityLogger;
  now?: () => Date;
}

export interface ReencryptFailure {
  namespace: string;
  name: string;
  reason: string;
}

export interface ReencryptReport {
  startedAt: string;
  finishedAt: string;
  rewritten: number;
  /** Deleted between list and replace. */
  skipped: number;
  conflictsRetried: number;
  listRestarts: number;
  failed: ReencryptFailure[];
}

function httpCode(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

function reason(error: unknown): string {
  const code = httpCode(error);
  const text = error instanceof Error ? error.message.split('\n')[0]! : String(error);
  return code === undefined ? text : `HTTP ${code}: ${text}`;
}

/** The object to PUT back: unchanged, with its resourceVersion for optimistic concurrency. */
function asReplacement(secret: V1Secret): V1Secret {
  return { ...secret, apiVersion: 'v1', kind: 'Secret' };
}

export async function reencryptSecrets(core: SecretsApi, options: ReencryptOptions = {}): Promise<ReencryptReport> {
  const pageSize = options.pageSize ?? 100;
  const concurrency = options.concurrency ?? 4;
  const maxConflictRetries = options.maxConflictRetries ?? 3;
  const maxListRestarts = options.maxListRestarts ?? 5;
  const now = options.now ?? (() => new Date());
  const { signal, logger } = options;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new ReencryptError(`pageSize must be a positive integer, got ${pageSize}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ReencryptError(`concurrency must be a positive integer, got ${concurrency}`);

  const startedAt = now().toISOString();
  const done = new Set<string>();
  const failed: ReencryptFailure[] = [];
  let rewritten = 0;
  let skipped = 0;
  let conflictsRetried = 0;
  let listRestarts = 0;
  let total = 0;

  const report = (): void => options.onProgress?.({ total: Math.max(total, done.size), rewritten, skipped, failed: failed.length });
  const checkAbort = (): void => {
    if (signal?.aborted) throw new ReencryptError(`re-encryption aborted after ${rewritten} Secrets; run it again to finish (it is idempotent)`);
  };

  async function rewrite(secret: V1Secret): Promise<void> {
    const namespace = secret.metadata?.namespace ?? '';
    const name = secret.metadata?.name ?? '';
    let current = secret;
    for (let attempt = 0; ; attempt++) {
      try {
        await core.replaceNamespacedSecret({ name, namespace, body: asReplacement(current) });
        rewritten++;
        return;
      } catch (error) {
        const code = httpCode(error);
        if (code === 404) { skipped++; return; }
        if (code === 409 && attempt < maxConflictRetries) {
          conflictsRetried++;
          try {
            current = await core.readNamespacedSecret({ name, namespace });
            continue;
          } catch (readError) {
            if (httpCode(readError) === 404) { skipped++; return; }
            failed.push({ namespace, name, reason: reason(readError) });
            return;
          }
        }
        failed.push({ namespace, name, reason: reason(error) });
        logger?.warn('re-encrypt: Secret not rewritten', { namespace, name, reason: reason(error) });
        return;
      }
    }
  }

  async function rewritePage(items: V1Secret[]): Promise<void> {
    const queue = items.filter((item) => {
      const key = item.metadata?.uid ?? `${item.metadata?.namespace}/${item.metadata?.name}`;
      if (done.has(key)) return false;
      done.add(key);
      return true;
    });
    const workers = Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        checkAbort();
        await rewrite(next);
        report();
      }
    });
    await Promise.all(workers);
  }

  let continueToken: string | undefined;
  for (;;) {
    checkAbort();
    let page;
    try {
      page = await core.listSecretForAllNamespaces({ limit: pageSize, ...(continueToken ? { _continue: continueToken } : {}) });
    } catch (error) {
      if (httpCode(error) === 410 && listRestarts < maxListRestarts) {
        // The continue token expired (compaction). List again; Secrets already done are skipped by uid.
        listRestarts++;
        continueToken = undefined;
        logger?.info('re-encrypt: list continue token expired; restarting the listing', { done: done.size });
        continue;
      }
      throw new ReencryptError(`listing Secrets failed after ${rewritten} rewritten (${reason(error)}); check k8sd's apiserver credentials and run it again`);
    }
    const remaining = page.metadata?.remainingItemCount ?? 0;
    total = Math.max(total, done.size + page.items.length + remaining);
    await rewritePage(page.items);
    continueToken = page.metadata?._continue || undefined;
    if (!continueToken) break;
  }
  total = done.size;
  report();

  const result: ReencryptReport = { startedAt, finishedAt: now().toISOString(), rewritten, skipped, conflictsRetried, listRestarts, failed };
  logger?.info('re-encrypt finished', { rewritten, skipped, failed: failed.length, conflictsRetried, listRestarts });
  return result;
}
