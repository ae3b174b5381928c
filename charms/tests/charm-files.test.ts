import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { loadCharmMeta, renderJujuMetadataFiles } from '../runtime/src/metadata.js';
import { basesFor, renderManifest } from '../runtime/src/pack/charm-files.js';

const k8s = loadCharmMeta(fileURLToPath(new URL('../k8s/charmcraft.yaml', import.meta.url)));
const worker = loadCharmMeta(fileURLToPath(new URL('../k8s-worker/charmcraft.yaml', import.meta.url)));

describe('files Juju reads from a .charm', () => {
  it('metadata.yaml carries the endpoints and assumes, not the build keys', () => {
    const metadata = yaml.load(renderJujuMetadataFiles(k8s)['metadata.yaml']);
    expect(metadata).toMatchObject({
      name: 'k8s',
      assumes: ['juju >= 3.3'],
      peers: { cluster: { interface: 'k8s-cluster' } },
      provides: { 'k8s-cluster': { interface: 'k8s-cluster' } },
    });
    expect(metadata).not.toHaveProperty('parts');
    expect(metadata).not.toHaveProperty('platforms');
    expect(yaml.load(renderJujuMetadataFiles(worker)['metadata.yaml'])).toMatchObject({ requires: { cluster: { interface: 'k8s-cluster', limit: 1 } } });
  });

  it('config.yaml and actions.yaml are the charmcraft.yaml sections', () => {
    const files = renderJujuMetadataFiles(k8s);
    expect(yaml.load(files['config.yaml'])).toEqual(k8s.raw.config);
    expect(yaml.load(files['actions.yaml'])).toEqual(k8s.raw.actions);
    expect(Object.keys(k8s.actions)).toEqual(['get-kubeconfig', 'refresh-certs', 'snapshot', 'pre-upgrade-check']);
    expect(k8s.actions['refresh-certs']?.required).toEqual(['expires-in']);
  });

  it('manifest.yaml lists the bases for the packed architecture', () => {
    expect(basesFor(k8s, 'amd64')).toEqual([
      { name: 'ubuntu', channel: '24.04', architectures: ['amd64'] },
      { name: 'ubuntu', channel: '26.04', architectures: ['amd64'] },
    ]);
    const manifest = yaml.load(renderManifest(k8s, 'arm64', new Date('2026-01-01T00:00:00Z')));
    expect(manifest).toEqual({
      'charmcraft-version': 'charms/pack.sh',
      'charmcraft-started-at': '2026-01-01T00:00:00.000Z',
      bases: [
        { name: 'ubuntu', channel: '24.04', architectures: ['arm64'] },
        { name: 'ubuntu', channel: '26.04', architectures: ['arm64'] },
      ],
    });
    expect(() => renderManifest(k8s, 's390x', new Date())).toThrow(/declares no platform for s390x/);
  });

  it('every config default has the declared type (the Context relies on it)', () => {
    for (const meta of [k8s, worker]) {
      for (const [option, spec] of Object.entries(meta.config)) {
        expect(spec.default, option).toBeDefined();
      }
    }
  });
});
