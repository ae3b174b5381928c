// Kubernetes API clients for membership, through @kubernetes/client-node, loaded lazily (the
// library is large; a single-node control plane never needs it here) and cached per kubeconfig
// file until the file changes (certificate renewal rewrites it).
import { statSync } from 'node:fs';
import type { CertificatesV1Api, CoreV1Api } from '@kubernetes/client-node';
import { loadKubeconfig } from '../kube.js';

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
  const { CoreV1Api: Core, CertificatesV1Api: Certificates } = await import('@kubernetes/client-node');
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
  const { PatchStrategy, setHeaderOptions } = await import('@kubernetes/client-node');
  return setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
}
