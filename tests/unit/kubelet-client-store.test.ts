import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dueForRenewal, SELF_RENEWING_BACKSTOP_FRACTION } from '../../src/k8sd/certs/renewal.js';
import { CertEntry } from '../../src/k8sd/certs/inventory.js';
import { Layout } from '../../src/layout.js';
import { KUBELET_CLIENT_CURRENT, KUBELET_CLIENT_FROM_K8SD, syncKubeletClientStore } from '../../src/services/kubelet-client-store.js';
import { kubeletCertDir } from '../../src/services/worker-specs.js';

// Stand-in PEM text: the store is compared and copied, never parsed.
const pem = (label: string, body: string): string => `-----BEGIN ${label}-----\n${Buffer.from(body).toString('base64')}\n-----END ${label}-----\n`;

describe('the kubelet client store k8sd fills before a kubelet start', () => {
  let root: string;
  let l: Layout;
  const writeKubeletConf = (serial: string): string => {
    const cert = pem('CERTIFICATE', `cert ${serial}`);
    const key = pem('EC PRIVATE KEY', `key ${serial}`);
    const doc = { users: [{ name: 'k8s-user', user: { 'client-certificate-data': Buffer.from(cert).toString('base64'), 'client-key-data': Buffer.from(key).toString('base64') } }] };
    mkdirSync(path.dirname(l.kubeconfig('kubelet.conf')), { recursive: true });
    writeFileSync(l.kubeconfig('kubelet.conf'), yaml.dump(doc));
    return cert + key;
  };
  const current = (): string => path.join(kubeletCertDir(l), KUBELET_CLIENT_CURRENT);
  /** What the kubelet does when it renews: a new file, and the link moved to it. */
  const kubeletRenews = (): string => {
    const renewed = path.join(kubeletCertDir(l), 'kubelet-client-2026-12-07-06-00-00.pem');
    writeFileSync(renewed, 'renewed by the kubelet');
    rmSync(current());
    symlinkSync(renewed, current());
    return renewed;
  };

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'kcs-'));
    l = new Layout({ K8S_ROOT: root, HOME: '/root' });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('does nothing before a kubelet.conf exists', () => expect(syncKubeletClientStore(l)).toBe('no-kubeconfig'));

  it('puts kubelet.conf’s pair behind the link the kubelet reads, 0600', () => {
    const pair = writeKubeletConf('1');
    expect(syncKubeletClientStore(l)).toBe('installed');
    expect(lstatSync(current()).isSymbolicLink()).toBe(true);
    expect(readFileSync(current(), 'utf8')).toBe(pair);
    expect(lstatSync(path.join(kubeletCertDir(l), KUBELET_CLIENT_FROM_K8SD)).mode & 0o777).toBe(0o600);
    expect(syncKubeletClientStore(l)).toBe('unchanged');
  });

  it('keeps a certificate the kubelet renewed itself since', () => {
    writeKubeletConf('1');
    syncKubeletClientStore(l);
    const renewed = kubeletRenews();
    expect(syncKubeletClientStore(l)).toBe('unchanged');
    expect(readlinkSync(current())).toBe(renewed);
  });

  it('replaces it when k8sd wrote a new kubelet.conf (refresh-certs, CA rotation)', () => {
    writeKubeletConf('1');
    syncKubeletClientStore(l);
    const renewed = kubeletRenews();
    const pair = writeKubeletConf('2');
    expect(syncKubeletClientStore(l)).toBe('installed');
    expect(readFileSync(current(), 'utf8')).toBe(pair);
    expect(existsSync(renewed)).toBe(true);
  });
});

describe('renewal of a certificate its service renews itself', () => {
  const policy = { lifetimeMs: 365 * 86_400_000, renewFraction: 1 / 3, renewBeforeMs: 30 * 86_400_000, checkIntervalMs: 3_600_000 };
  const entry = (leftFraction: number, selfRenewing: boolean): CertEntry => {
    const now = Date.now();
    const lifetime = 100 * 86_400_000;
    return {
      name: 'kubelet.conf', kind: 'kubeconfig', file: 'x', subject: 'system:node:n', ca: 'c', services: ['kubelet'], externallyManaged: false,
      notBefore: new Date(now - lifetime * (1 - leftFraction)).toISOString(), expires: new Date(now + lifetime * leftFraction).toISOString(), residualSeconds: 0,
      ...(selfRenewing ? { selfRenewing } : {}),
    };
  };

  it('is left to the kubelet while it has time to renew (70–90% of the lifetime)', () => {
    expect(dueForRenewal([entry(0.2, true)], policy)).toEqual([]);
    expect(dueForRenewal([entry(0.2, false)], policy)).toHaveLength(1);
  });

  it('is renewed by k8sd as a backstop near its end', () => {
    expect(dueForRenewal([entry(SELF_RENEWING_BACKSTOP_FRACTION / 2, true)], policy)).toHaveLength(1);
  });
});
