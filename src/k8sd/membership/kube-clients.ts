// Kubernetes API clients for membership, through @kubernetes/client-node, loaded lazily (the
// library is large; a single-node control plane never needs it here) and cached per kubeconfig
// file until the file changes (certificate renewal rewrites it).
import { existsSync, statSync } from 'node:fs';
import type { CertificatesV1Api, CoreV1Api } from '@kubernetes/client-node';
import { loadKubeconfig } from '../kube.js';
import type { NodeContext } from '../node-context.js';

interface Cached {
  mtimeMs: number;
  core: CoreV1Api;
  certificates: CertificatesV1Api;
}

const cache = new Map<string, Cached>();

export async function kubeClients(kubeconfigFile: string): Promise<{ core: CoreV1Api; certificates: CertificatesV1Api }> {
  const mtimeMs = statSync(kubeconfigFile).mtimeMs;
  const hit = cache.get(kubeconfigFile);
  if (hit && hit.mtimeMs === mtimeMs) return hit;
  const { CoreV1Api: Core, CertificatesV1Api: Certificates } = await import('../kube-api.js');
  const kc = await loadKubeconfig(kubeconfigFile);
  const entry = { mtimeMs, core: kc.makeApiClient(Core), certificates: kc.makeApiClient(Certificates) };
  cache.set(kubeconfigFile, entry);
  return entry;
}

/** HTTP status of a client-node ApiException (undefined for other errors). */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Options for a JSON merge patch (client-node sends strategic merge otherwise). */
export async function mergePatchOptions(): Promise<Parameters<CoreV1Api['patchNode']>[1]> {
  const { PatchStrategy, setHeaderOptions } = await import('../kube-api.js');
  return setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
}

/** Names of the Kubernetes Nodes, listed at most every few seconds (a burst of token requests shares one list). */
let nodeNames: { at: number; names: Promise<Set<string>> } | undefined;
const NODE_LIST_TTL_MS = 3000;

export async function kubernetesNodeExists(d: Pick<NodeContext, 'layout' | 'log'>, name: string): Promise<boolean> {
  const admin = d.layout.kubeconfig('admin.conf');
  if (!existsSync(admin)) return false;
  if (!nodeNames || Date.now() - nodeNames.at > NODE_LIST_TTL_MS) {
    const names = kubeClients(admin).then(async ({ core }) => new Set((await core.listNode()).items.map((n) => n.metadata?.name ?? '')));
    nodeNames = { at: Date.now(), names };
    names.catch(() => (nodeNames = undefined));
  }
  try {
    if (!(await nodeNames.names).has(name)) return false;
    // The shared list may be a few seconds old (a node removed just now): confirm with a fresh read.
    try {
      await (await kubeClients(admin)).core.readNode({ name });
      return true;
    } catch (err) {
      if (apiStatus(err) === 404) {
        nodeNames = undefined;
        return false;
      }
      throw err;
    }
  } catch (err) {
    // The API server is down: do not block issuing a token on it.
    d.log.warn('could not check for an existing Kubernetes node before issuing a token', { node: name, error: (err as Error).message });
    return false;
  }
}
