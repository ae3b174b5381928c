// Which bundled image archives the enabled features run: bootstrap loads those right after the ones
// the node needs, and the others only once kube-apiserver is ready (issue 17).
import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, type FeatureName } from '../../src/config/features.js';
import { archivesOfFeatures, FEATURE_IMAGES, IMAGE_FEATURES } from '../../src/services/images.js';

const archivesFor = (...on: FeatureName[]) => archivesOfFeatures((f) => on.includes(f));

describe('the image archives of the enabled features', () => {
  it('a lean bootstrap (network and dns) needs only CoreDNS', () => {
    expect([...archivesFor('network', 'dns')]).toEqual(['coredns.tar']);
  });

  it("CK8s's plain bootstrap (network, dns, gateway, local-storage, metrics-server) needs every bundled image", () => {
    expect([...archivesFor('network', 'dns', 'gateway', 'local-storage', 'metrics-server')].sort()).toEqual(
      ['coredns.tar', 'local-path-helper.tar', 'local-path-provisioner.tar', 'metrics-server.tar', 'traefik.tar'],
    );
  });

  it('ingress and gateway share traefik; local-storage runs two images', () => {
    expect([...archivesFor('ingress')]).toEqual(['traefik.tar']);
    expect([...archivesFor('gateway')]).toEqual(['traefik.tar']);
    expect([...archivesFor('local-storage')].sort()).toEqual(['local-path-helper.tar', 'local-path-provisioner.tar']);
    expect([...archivesFor('network', 'load-balancer')]).toEqual([]);
  });

  it('every image is run by some feature, and names only known features', () => {
    expect(Object.keys(IMAGE_FEATURES).sort()).toEqual(Object.keys(FEATURE_IMAGES).sort());
    for (const features of Object.values(IMAGE_FEATURES)) {
      expect(features.length).toBeGreaterThan(0);
      for (const f of features) expect(FEATURE_NAMES).toContain(f);
    }
  });
});
