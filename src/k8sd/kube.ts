// Kubernetes API access for k8sd. API calls go through @kubernetes/client-node, loaded
// lazily through ./kube-api.js (the only module that imports it at run time): the library is
// large, and the health probe that `k8s status` and start-up need is a plain HTTPS GET of
// /readyz with the kubeconfig's credentials.
import https from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { kubeconfigUserPair } from '../pki/signer.js';

export async function loadKubeconfig(file: string): Promise<KubeConfig> {
  const { KubeConfig } = await import('./kube-api.js');
  // The cluster CA may be an intermediate (ca-crt from an enterprise PKI): Go clients take any
  // certificate of the bundle as a trust anchor, OpenSSL only with allowPartialTrustChain.
  // Without it every k8sd API call fails with "fetch failed" on such a cluster.
  class PartialChainKubeConfig extends KubeConfig {
    override createDispatcherOptions(...args: Parameters<KubeConfig['createDispatcherOptions']>): ReturnType<KubeConfig['createDispatcherOptions']> {
      const opts = super.createDispatcherOptions(...args);
      if (opts.type === 'agent') opts.connect = { ...opts.connect, allowPartialTrustChain: true } as typeof opts.connect;
      return opts;
    }
  }
  const kc = new PartialChainKubeConfig();
  kc.loadFromFile(file);
  return kc;
}

export async function coreApi(kubeconfigFile: string): Promise<CoreV1Api> {
  const { CoreV1Api } = await import('./kube-api.js');
  return (await loadKubeconfig(kubeconfigFile)).makeApiClient(CoreV1Api);
}

export interface KubeconfigCreds {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

/** Server, CA bundle, client certificate and key of a kubeconfig (the client pair embedded or named by path). */
export function readCreds(file: string): KubeconfigCreds {
  type Doc = { clusters?: Array<{ cluster?: Record<string, string> }>; users?: Array<{ user?: Record<string, string> }> };
  const doc = yaml.load(readFileSync(file, 'utf8')) as Doc;
  const c = doc.clusters?.[0]?.cluster ?? {};
  const client = kubeconfigUserPair(doc.users?.[0]?.user ?? {});
  return { server: c.server ?? '', ca: Buffer.from(c['certificate-authority-data'] ?? '', 'base64').toString(), cert: client.cert ?? '', key: client.key ?? '' };
}

/**
 * A plain GET with the kubeconfig's client certificate, verifying the server against its CA.
 * Undefined when the apiserver cannot be reached (or the kubeconfig is missing or unreadable).
 */
export async function apiserverGet(kubeconfigFile: string, path: string, timeoutMs = 2000): Promise<{ status: number; body: string } | undefined> {
  if (!existsSync(kubeconfigFile)) return undefined;
  let creds: KubeconfigCreds;
  try {
    creds = readCreds(kubeconfigFile);
  } catch {
    return undefined;
  }
  return new Promise((resolve) => {
    // allowPartialTrustChain: the cluster CA may be an intermediate (ca-crt from an enterprise
    // PKI). Go clients take any certificate of the bundle as a trust anchor; OpenSSL needs this
    // flag, or it looks for a self-signed root that is not there and the probe never succeeds.
    const opts = { ca: creds.ca, cert: creds.cert, key: creds.key, timeout: timeoutMs, servername: 'kubernetes', allowPartialTrustChain: true };
    const req = https.request(`${creds.server}${path}`, opts, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** GET /readyz with the kubeconfig's client certificate, verifying the server against its CA. */
export async function apiserverReady(kubeconfigFile: string, timeoutMs = 2000): Promise<boolean> {
  const reply = await apiserverGet(kubeconfigFile, '/readyz', timeoutMs);
  return reply?.status === 200 && reply.body.trim() === 'ok';
}

export async function waitApiserverReady(kubeconfigFile: string, timeoutMs: number, isAlive?: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await apiserverReady(kubeconfigFile)) return;
    const dead = await isAlive?.();
    if (dead) throw new Error(dead);
    // The node components start on the first 200 (bootstrap, join, restart): a short poll keeps them from waiting.
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kube-apiserver did not report ready within ${Math.round(timeoutMs / 1000)} s; see its log`);
}
