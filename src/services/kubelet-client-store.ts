// The kubelet's client-certificate store, shared by two writers. With rotateCertificates the
// kubelet keeps the certificate it talks to the API server with in <cert-dir>: a link,
// kubelet-client-current.pem, to a file holding the certificate and its key. It renews that
// certificate itself through a CSR, and at start it prefers the store to the pair embedded in
// kubelet.conf. k8sd writes kubelet.conf when a node joins, on refresh-certs, on its renewal
// backstop and on a CA rotation, and each time restarts the kubelet; so before each start k8sd
// puts kubelet.conf's pair into the store, but only when that pair changed since k8sd last put
// it there. A certificate the kubelet renewed by itself since is newer and stays.
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { writeFileAtomic } from '../host/files.js';
import { Layout } from '../layout.js';
import { ServiceManager, ServiceStatus } from './manager.js';
import { ServiceId } from './specs.js';
import { kubeletCertDir } from './worker-specs.js';

/** The link the kubelet reads and re-points when it renews. */
export const KUBELET_CLIENT_CURRENT = 'kubelet-client-current.pem';
/** What k8sd last put into the store: the pair of kubelet.conf at that time. */
export const KUBELET_CLIENT_FROM_K8SD = 'kubelet-client-k8sd.pem';

export type StoreSync = 'installed' | 'unchanged' | 'no-kubeconfig';

/** The PEM certificate and key embedded in a kubeconfig's first user, or undefined. */
function embeddedPair(file: string): string | undefined {
  const doc = yaml.load(readFileSync(file, 'utf8')) as { users?: Array<{ user?: Record<string, string> }> } | undefined;
  const user = doc?.users?.[0]?.user ?? {};
  const cert = user['client-certificate-data'];
  const key = user['client-key-data'];
  if (!cert || !key) return undefined;
  const pem = (b64: string): string => {
    const text = Buffer.from(b64, 'base64').toString('utf8');
    return text.endsWith('\n') ? text : `${text}\n`;
  };
  return pem(cert) + pem(key);
}

function linkExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

export function syncKubeletClientStore(l: Layout): StoreSync {
  const conf = l.kubeconfig('kubelet.conf');
  if (!existsSync(conf)) return 'no-kubeconfig';
  const pair = embeddedPair(conf);
  if (!pair) return 'no-kubeconfig';
  const dir = kubeletCertDir(l);
  const record = path.join(dir, KUBELET_CLIENT_FROM_K8SD);
  const current = path.join(dir, KUBELET_CLIENT_CURRENT);
  if (linkExists(current) && existsSync(record) && readFileSync(record, 'utf8') === pair) return 'unchanged';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileAtomic(record, pair, 0o600);
  // The kubelet wants a link here (it refuses a plain file when it renews); swapped in one rename.
  const tmp = `${current}.k8sd-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(record, tmp);
  renameSync(tmp, current);
  return 'installed';
}

/** The certificate the kubelet uses now: the store's, else kubelet.conf's (PEM, possibly with its key). */
export function kubeletClientStoreFile(l: Layout): string | undefined {
  const current = path.join(kubeletCertDir(l), KUBELET_CLIENT_CURRENT);
  return existsSync(current) ? current : undefined;
}

/** A ServiceManager that brings the kubelet's client store up to date before it starts the kubelet. */
export class KubeletClientStoreSync implements ServiceManager {
  constructor(
    private readonly inner: ServiceManager,
    private readonly layout: Layout,
  ) {}

  get backend(): ServiceManager['backend'] {
    return this.inner.backend;
  }

  async start(name: ServiceId): Promise<void> {
    if (name === 'kubelet') syncKubeletClientStore(this.layout);
    await this.inner.start(name);
  }

  stop(name: ServiceId): Promise<void> {
    return this.inner.stop(name);
  }

  async restart(name: ServiceId): Promise<void> {
    if (name === 'kubelet') syncKubeletClientStore(this.layout);
    await this.inner.restart(name);
  }

  status(name: ServiceId): Promise<ServiceStatus> {
    return this.inner.status(name);
  }

  stopAll(): Promise<void> {
    return this.inner.stopAll();
  }

  reapStale(): Promise<void> {
    return this.inner.reapStale();
  }
}
