import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseServerUrl, ServerUrlError } from '../../src/config/net.js';
import { kubeconfigWithServer, renderKubeconfig } from '../../src/pki/signer.js';

describe('kubeconfig server', () => {
  it.each([
    ['10.0.0.5:6443', 'https://10.0.0.5:6443'],
    ['https://lb.example.com', 'https://lb.example.com'],
    ['https://lb.example.com:443/', 'https://lb.example.com'],
    ['[fd00::5]:6443', 'https://[fd00::5]:6443'],
    ['https://lb.example.com/k8s', 'https://lb.example.com/k8s'],
  ])('accepts %s as %s', (input, url) => expect(parseServerUrl(input)).toBe(url));

  it.each([
    ['http://10.0.0.5:6443', /scheme http/],
    ['file:///etc/passwd', /scheme file/],
    ['https://10.0.0.5:6443\n    insecure-skip-tls-verify: true', /control characters/],
    ['https://a b', /spaces/],
    ['https://user:pw@10.0.0.5', /credentials/],
    ['https://10.0.0.5/?x=1', /query/],
    ['https://bad_host!', /URL|neither/],
    ['', /URL/],
  ])('refuses %j', (input, reason) => {
    expect(() => parseServerUrl(input)).toThrow(ServerUrlError);
    expect(() => parseServerUrl(input)).toThrow(reason);
  });

  it('replaces the server in the YAML document, nothing else', () => {
    const original = renderKubeconfig('https://10.0.0.5:6443', ['-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n'], 'c', 'k');
    const doc = yaml.load(kubeconfigWithServer(original, 'https://lb.example.com')) as Record<string, unknown>;
    const before = yaml.load(original) as Record<string, unknown>;
    expect((doc.clusters as Array<{ cluster: { server: string } }>)[0]!.cluster.server).toBe('https://lb.example.com');
    expect({ ...doc, clusters: undefined }).toEqual({ ...before, clusters: undefined });
  });
});
