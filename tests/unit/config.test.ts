import { describe, expect, it } from 'vitest';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';

function rejects(yaml: string, key: string, reason?: RegExp): void {
  let err: unknown;
  try {
    parseBootstrapYaml(yaml);
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${JSON.stringify(yaml)} to be rejected`).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).key).toBe(key);
  if (reason) expect((err as ConfigError).reason).toMatch(reason);
}

describe('bootstrap configuration', () => {
  it('applies Canonical Kubernetes defaults to an empty file', () => {
    const c = parseBootstrapYaml('');
    expect(c.podCidrs.map((x) => x.text)).toEqual(['10.1.0.0/16']);
    expect(c.serviceCidrs.map((x) => x.text)).toEqual(['10.152.183.0/24']);
    expect(c.securePort).toBe(6443);
    expect(c.datastoreType).toBe('etcd');
    expect(c.keyType).toBe('ecdsa-p256');
    expect(c.podSecurity).toEqual({ enforce: 'baseline', audit: 'restricted', warn: 'restricted', exemptNamespaces: ['kube-system'] });
  });

  it('accepts dual-stack CIDRs, extra SANs and extra args with null deletions', () => {
    const c = parseBootstrapYaml(`
pod-cidr: 10.1.0.0/16,fd01::/108
service-cidr: 10.152.183.0/24,fd98::/108
extra-sans: [k8s.example.com, 10.0.0.10]
extra-node-kube-apiserver-args:
  --request-timeout: 120s
  --event-ttl: null
key-type: rsa-3072
`);
    expect(c.podCidrs).toHaveLength(2);
    expect(c.extraArgs['kube-apiserver']).toEqual({ 'request-timeout': '120s', 'event-ttl': null });
    expect(c.keyType).toBe('rsa-3072');
  });

  it('names the key of an unknown top-level key', () => rejects('pod-cidrs: 10.1.0.0/16', 'pod-cidrs', /unknown key/));
  it('names the key of an unknown nested key', () => rejects('cluster-config:\n  dns:\n    enabeld: true', 'cluster-config.dns.enabeld', /unknown key/));
  it('rejects a malformed CIDR', () => rejects('pod-cidr: 10.1.0.0', 'pod-cidr', /not a CIDR/));
  it('rejects a CIDR with host bits set', () => rejects('pod-cidr: 10.1.0.1/16', 'pod-cidr', /host bits/));
  it('rejects an out-of-range prefix', () => rejects('service-cidr: 10.152.0.0/33', 'service-cidr', /maximum/));
  it('rejects an invalid address in a CIDR', () => rejects('pod-cidr: 10.300.0.0/16', 'pod-cidr', /valid IP/));
  it('rejects overlapping pod and service CIDRs', () => rejects('pod-cidr: 10.0.0.0/8\nservice-cidr: 10.152.183.0/24', 'service-cidr', /overlaps/));
  it('rejects two CIDRs of one family', () => rejects('pod-cidr: 10.1.0.0/16,10.2.0.0/16', 'pod-cidr', /dual-stack/));
  it('rejects a too-large service CIDR', () => rejects('service-cidr: 10.0.0.0/8\npod-cidr: 192.168.0.0/16', 'service-cidr', /larger/));
  it('rejects a bad extra SAN', () => rejects('extra-sans: ["bad name!"]', 'extra-sans[0]', /neither/));
  it('rejects a wrong type', () => rejects('secure-port: "6443"', 'secure-port'));
  it('rejects a port out of range', () => rejects('etcd-port: 70000', 'etcd-port'));
  it('rejects clashing ports', () => rejects('etcd-port: 6443', 'etcd-port', /already used/));
  it('rejects an unknown datastore type', () => rejects('datastore-type: dqlite', 'datastore-type'));
  it('rejects external datastore without servers', () => rejects('datastore-type: external', 'datastore-servers', /at least one/));
  it('rejects plain-http external etcd', () =>
    rejects('datastore-type: external\ndatastore-servers: ["http://10.0.0.1:2379"]', 'datastore-servers[0]', /https/));
  it('rejects a non-PEM certificate', () => rejects('ca-crt: hello', 'ca-crt', /PEM/));
  it('rejects a key without its certificate', () =>
    rejects('ca-key: |\n  -----BEGIN PRIVATE KEY-----\n  abc\n  -----END PRIVATE KEY-----\n', 'ca-key', /without ca-crt/));
  it('rejects a malformed flag name in extra args', () => rejects('extra-node-kubelet-args:\n  "bad flag": x', 'extra-node-kubelet-args.bad flag'));
  it('rejects extra args for an unknown service', () => rejects('extra-node-kube-dns-args: {}', 'extra-node-kube-dns-args', /unknown key/));
  it('rejects a bad DNS service IP', () => rejects('cluster-config:\n  dns:\n    service-ip: 10.152.183.300', 'cluster-config.dns.service-ip'));
  it('refuses to disable RBAC', () => rejects('disable-rbac: true', 'disable-rbac', /cannot be disabled/));
  it('rejects invalid YAML with its line', () => rejects('pod-cidr: [unclosed', '(document)', /line/));
  it('rejects a document that is not a mapping', () => rejects('- a\n- b', '(document)', /mapping/));
  it('rejects an unknown key type', () => rejects('key-type: rsa-1024', 'key-type'));
  it('rejects an unknown Pod Security level', () => rejects('security:\n  pod-security:\n    enforce: strict', 'security.pod-security.enforce'));
});
