// Contract with the daemon: what the charm sends `k8s bootstrap --file -` must pass the
// daemon's own strict bootstrap schema (src/config/bootstrap.ts).
import { describe, expect, it } from 'vitest';
import { Config } from '../../runtime/src/model.js';
import { bootstrapDocument, controlPlaneJoinDocument } from '../src/bootstrap-config.js';
import { k8sMeta } from '../../k8s-common/tests/scenario-helpers.js';

interface BootstrapModule {
  validateBootstrapConfig(document: unknown): { podCidrs: unknown[]; extraSans: string[]; fips: boolean };
}

// Imported by URL so that the charms' tsconfig (rootDir charms/) does not compile src/.
const daemonBootstrap = new URL('../../../src/config/bootstrap.ts', import.meta.url).href;

function configWith(values: Record<string, string | number | boolean>): Config {
  const defaults = Object.fromEntries(
    Object.entries(k8sMeta.config).flatMap(([option, spec]) => (spec.default === undefined ? [] : [[option, spec.default]])),
  );
  return new Config({ ...defaults, ...values });
}

describe('the bootstrap document the k8s charm sends', () => {
  it('passes the daemon schema with defaults and with every option set', async () => {
    const { validateBootstrapConfig } = (await import(daemonBootstrap)) as BootstrapModule;
    expect(() => validateBootstrapConfig(bootstrapDocument(configWith({})))).not.toThrow();

    const full = validateBootstrapConfig(
      bootstrapDocument(
        configWith({
          'bootstrap-datastore': 'managed-etcd',
          'bootstrap-pod-cidr': '10.1.0.0/16,fd01::/108',
          'bootstrap-service-cidr': '10.152.183.0/24,fd98::/108',
          'kube-apiserver-extra-args': 'audit-log-maxage=30',
          'kube-controller-manager-extra-args': 'v=2',
          'kube-scheduler-extra-args': 'v=2',
          'kube-proxy-extra-args': 'v=2',
          'kubelet-extra-args': 'max-pods=200 read-only-port=10255',
          'accept-insecure-node-args': 'kubelet:read-only-port',
          'bootstrap-node-taints': 'dedicated=cp:NoSchedule',
          'dns-cluster-domain': 'k8s.example',
          'dns-service-ip': '10.152.183.53',
          'dns-upstream-nameservers': '1.1.1.1 9.9.9.9:53',
          'local-storage-enabled': true,
          'local-storage-local-path': '/srv/volumes',
          'local-storage-reclaim-policy': 'Retain',
          'metrics-server-enabled': true,
          'datastore-extra-args': 'quota-backend-bytes=8589934592',
          'kube-apiserver-extra-sans': 'api.example.com 10.0.0.100',
          fips: true,
        }),
      ),
    );
    expect(full.extraSans).toEqual(['api.example.com', '10.0.0.100']);
    expect(full.fips).toBe(true);
    expect(full.podCidrs).toHaveLength(2);
  });

  it('passes the daemon schema with an external etcd from the etcd relation', async () => {
    const { validateBootstrapConfig } = (await import(daemonBootstrap)) as BootstrapModule;
    const external = {
      servers: ['https://10.0.0.5:2379', 'https://10.0.0.6:2379'],
      caCrt: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      clientCrt: '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n',
      clientKey: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n',
    };
    const parsed = validateBootstrapConfig(bootstrapDocument(configWith({ 'bootstrap-datastore': 'etcd' }), external)) as unknown as {
      datastoreType: string;
      datastoreServers: string[];
    };
    expect(parsed.datastoreType).toBe('external');
    expect(parsed.datastoreServers).toEqual(external.servers);
  });

  it('is refused by the daemon, naming the key, for an insecure flag without accept-insecure-node-args', async () => {
    const { validateBootstrapConfig } = (await import(daemonBootstrap)) as BootstrapModule;
    expect(() => validateBootstrapConfig(bootstrapDocument(configWith({ 'kubelet-extra-args': 'read-only-port=10255' })))).toThrow(
      /extra-node-kubelet-args/,
    );
  });

  it('is refused, naming the key, when it enables a feature without what the daemon requires', async () => {
    const { validateBootstrapConfig } = (await import(daemonBootstrap)) as BootstrapModule;
    // load-balancer-enabled without load-balancer-cidrs: the daemon refuses a load balancer without a pool.
    expect(() => validateBootstrapConfig(bootstrapDocument(configWith({ 'load-balancer-enabled': true })))).toThrow(/cluster-config\.load-balancer\.cidrs: no address pool/);
  });

  it('sends a control-plane join document only when there is something to say', () => {
    expect(controlPlaneJoinDocument(configWith({}))).toBeUndefined();
    expect(controlPlaneJoinDocument(configWith({ 'kube-apiserver-extra-sans': 'a.example.com', 'kubelet-extra-args': 'v=2' }))).toEqual({
      'extra-sans': ['a.example.com'],
      'extra-node-kubelet-args': { '--v': '2' },
    });
  });
});
