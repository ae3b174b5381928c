// Kubernetes API access for k8sd, always through @kubernetes/client-node.
import { CoreV1Api, Health, KubeConfig, VersionApi } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';

export function loadKubeconfig(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export async function apiserverReady(kubeconfigFile: string, timeoutMs = 2000): Promise<boolean> {
  if (!existsSync(kubeconfigFile)) return false;
  try {
    return await new Health(loadKubeconfig(kubeconfigFile)).readyz({ timeout: timeoutMs });
  } catch {
    return false;
  }
}

export async function waitApiserverReady(kubeconfigFile: string, timeoutMs: number, isAlive?: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await apiserverReady(kubeconfigFile)) return;
    const dead = await isAlive?.();
    if (dead) throw new Error(dead);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kube-apiserver did not report ready within ${Math.round(timeoutMs / 1000)} s; see its log`);
}

export async function apiserverVersion(kubeconfigFile: string): Promise<string | undefined> {
  try {
    const v = await loadKubeconfig(kubeconfigFile).makeApiClient(VersionApi).getCode();
    return v.gitVersion;
  } catch {
    return undefined;
  }
}

export function coreApi(kubeconfigFile: string): CoreV1Api {
  return loadKubeconfig(kubeconfigFile).makeApiClient(CoreV1Api);
}
