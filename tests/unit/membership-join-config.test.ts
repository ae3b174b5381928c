import { describe, expect, it } from 'vitest';
import { JoinConfigError, parseJoinYaml } from '../../src/config/join.js';

function rejects(text: string, role: 'control-plane' | 'worker', key: string, reason?: RegExp): void {
  let err: unknown;
  try {
    parseJoinYaml(text, role);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(JoinConfigError);
  expect((err as JoinConfigError).key).toBe(key);
  if (reason) expect((err as JoinConfigError).reason).toMatch(reason);
}

describe('join configuration', () => {
  it('accepts an empty file', () => {
    expect(parseJoinYaml('', 'worker').extraArgs).toEqual({});
  });

  it('reads extra SANs and extra args for a control-plane join', () => {
    const c = parseJoinYaml('extra-sans: [cp2.example.com, 10.0.0.50]\nextra-node-kube-apiserver-args:\n  --request-timeout: 120s\n  --event-ttl: null\n', 'control-plane');
    expect(c.extraSans).toEqual(['cp2.example.com', '10.0.0.50']);
    expect(c.extraArgs['kube-apiserver']).toEqual({ 'request-timeout': '120s', 'event-ttl': null });
  });

  it('reads worker args, including the apiserver proxy', () => {
    const c = parseJoinYaml('extra-node-kubelet-args:\n  --eviction-hard: "nodefs.available<1%"\nextra-node-k8s-apiserver-proxy-args:\n  --refresh-interval: 20s\n', 'worker');
    expect(c.extraArgs.kubelet).toEqual({ 'eviction-hard': 'nodefs.available<1%' });
    expect(c.extraArgs['k8s-apiserver-proxy']).toEqual({ 'refresh-interval': '20s' });
  });

  it('names an unknown key', () => rejects('extra-san: [a]', 'control-plane', 'extra-san', /unknown key/));
  it('refuses control-plane keys in a worker file', () => rejects('extra-node-kube-apiserver-args: {}', 'worker', 'extra-node-kube-apiserver-args', /worker join file/));
  it('refuses extra-sans for a worker', () => rejects('extra-sans: [a]', 'worker', 'extra-sans'));
  it('rejects a bad SAN', () => rejects('extra-sans: ["no way!"]', 'control-plane', 'extra-sans[0]', /neither/));
  it('rejects a key without its certificate', () => rejects('apiserver-key: "-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----"', 'control-plane', 'apiserver-key', /without apiserver-crt/));
  it('rejects a non-PEM certificate', () => rejects('apiserver-crt: hello', 'control-plane', 'apiserver-crt', /PEM/));
  it('rejects a malformed flag name', () => rejects('extra-node-kubelet-args:\n  "bad flag": x', 'worker', 'extra-node-kubelet-args.bad flag'));
  it('rejects config file names with a path', () => rejects('extra-node-config-files:\n  ../evil: x', 'worker', 'extra-node-config-files.../evil'));
  it('says containerd-base-dir is not supported', () => rejects('containerd-base-dir: /srv/containerd', 'worker', 'containerd-base-dir', /not supported/));
  it('rejects YAML that is not a mapping', () => rejects('- a\n- b', 'worker', '(document)', /mapping/));
  it('rejects broken YAML with the line', () => rejects('a: [\n', 'worker', '(document)', /line/));
});

describe('fips in a join file', () => {
  it('is accepted for both roles, defaults to false, and must be a boolean', () => {
    expect(parseJoinYaml('fips: true\n', 'worker').fips).toBe(true);
    expect(parseJoinYaml('fips: true\n', 'control-plane').fips).toBe(true);
    expect(parseJoinYaml('', 'worker').fips).toBe(false);
    expect(() => parseJoinYaml('fips: "yes"\n', 'worker')).toThrow(JoinConfigError);
    expect(() => parseJoinYaml('fips: "yes"\n', 'worker')).toThrow(/fips/);
  });
});
