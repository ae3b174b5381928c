import { describe, expect, it } from 'vitest';
import { ConfigError, parseBootstrapYaml } from '../../src/config/bootstrap.js';
import { JoinConfigError, parseJoinYaml } from '../../src/config/join.js';
import { checkArgOverrides, controlCharacterProblem, isSecurityCritical, SECURITY_CRITICAL_FLAGS } from '../../src/config/overrides.js';
import { ArgsFileError, renderArgsFile } from '../../src/services/args.js';
import { ARG_BUILDERS } from '../../src/services/specs.js';

function bootstrapError(text: string): ConfigError {
  try {
    parseBootstrapYaml(text);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

function joinError(text: string, role: 'control-plane' | 'worker'): JoinConfigError {
  try {
    parseJoinYaml(text, role);
  } catch (e) {
    if (e instanceof JoinConfigError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be refused`);
}

describe('security-critical overrides', () => {
  it.each([
    ['extra-node-kube-apiserver-args:\n  --authorization-mode: AlwaysAllow\n', 'extra-node-kube-apiserver-args.authorization-mode'],
    ['extra-node-kube-apiserver-args:\n  --anonymous-auth: "true"\n', 'extra-node-kube-apiserver-args.anonymous-auth'],
    ['extra-node-kube-apiserver-args:\n  --encryption-provider-config: null\n', 'extra-node-kube-apiserver-args.encryption-provider-config'],
    ['extra-node-kube-apiserver-args:\n  --audit-log-path: "-"\n', 'extra-node-kube-apiserver-args.audit-log-path'],
    ['extra-node-etcd-args:\n  --client-cert-auth: "false"\n', 'extra-node-etcd-args.client-cert-auth'],
    ['extra-node-kubelet-args:\n  --read-only-port: 10255\n', 'extra-node-kubelet-args.read-only-port'],
    ['extra-node-kube-controller-manager-args:\n  --profiling: true\n', 'extra-node-kube-controller-manager-args.profiling'],
  ])('refuses %j without an opt-in, naming the key and the opt-in', (text, key) => {
    const e = bootstrapError(text);
    expect(e.key).toBe(key);
    expect(e.reason).toMatch(/security-critical/);
    expect(e.reason).toMatch(/accept-insecure-node-args/);
  });

  it('accepts a listed flag and reports it as weakened', () => {
    const c = parseBootstrapYaml(
      'extra-node-kube-apiserver-args:\n  --profiling: "true"\n  --event-ttl: 2h\nextra-node-etcd-args:\n  --client-cert-auth: null\naccept-insecure-node-args:\n  kube-apiserver: [profiling]\n  etcd: [--client-cert-auth]\n',
    );
    expect(c.weakened).toEqual([
      { service: 'kube-apiserver', flag: 'profiling', value: 'true' },
      { service: 'etcd', flag: 'client-cert-auth', value: null },
    ]);
    expect(c.extraArgs['kube-apiserver']).toEqual({ profiling: 'true', 'event-ttl': '2h' });
  });

  it('a harmless override needs no opt-in and weakens nothing', () => {
    expect(parseBootstrapYaml('extra-node-kubelet-args:\n  --max-pods: 200\n').weakened).toEqual([]);
  });

  it('refuses an acceptance of a flag that is not critical', () => {
    const e = bootstrapError('extra-node-kubelet-args:\n  --max-pods: 200\naccept-insecure-node-args:\n  kubelet: [max-pods]\n');
    expect(e.key).toBe('accept-insecure-node-args.kubelet[0]');
    expect(e.reason).toMatch(/not a security-critical flag/);
  });

  it('refuses an acceptance of a flag that is not overridden', () => {
    const e = bootstrapError('accept-insecure-node-args:\n  kube-apiserver: [anonymous-auth]\n');
    expect(e.key).toBe('accept-insecure-node-args.kube-apiserver[0]');
    expect(e.reason).toMatch(/does not change it/);
  });

  it('refuses an acceptance for an unknown service', () => {
    expect(bootstrapError('accept-insecure-node-args:\n  kube-dns: [x]\n').key).toBe('accept-insecure-node-args.kube-dns');
  });

  it('guards worker and control-plane join files the same way', () => {
    expect(joinError('extra-node-kubelet-args:\n  --anonymous-auth: "true"\n', 'worker').key).toBe('extra-node-kubelet-args.anonymous-auth');
    expect(joinError('extra-node-kube-apiserver-args:\n  --authorization-mode: AlwaysAllow\n', 'control-plane').key).toBe('extra-node-kube-apiserver-args.authorization-mode');
    const ok = parseJoinYaml('extra-node-kubelet-args:\n  --anonymous-auth: "true"\naccept-insecure-node-args:\n  kubelet: [anonymous-auth]\n', 'worker');
    expect(ok.weakened).toEqual([{ service: 'kubelet', flag: 'anonymous-auth', value: 'true' }]);
  });

  it('every flag a secure default sets for the security layer is on the list', () => {
    for (const flag of ['anonymous-auth', 'authorization-mode', 'client-ca-file', 'tls-cert-file', 'kubelet-certificate-authority', 'service-account-key-file', 'audit-policy-file', 'encryption-provider-config', 'admission-control-config-file']) {
      expect(isSecurityCritical('kube-apiserver', flag), flag).toBe(true);
    }
    expect(isSecurityCritical('kube-apiserver', 'request-timeout')).toBe(false);
    expect(Object.keys(SECURITY_CRITICAL_FLAGS)).toEqual(expect.arrayContaining(Object.keys(ARG_BUILDERS)));
  });
});

describe('control characters', () => {
  it.each([
    ['a newline in a value', 'extra-node-kube-apiserver-args:\n  --request-timeout: "120s\\n--authorization-mode=AlwaysAllow"\n', 'extra-node-kube-apiserver-args.request-timeout', /newline/],
    ['a carriage return', 'extra-node-kubelet-args:\n  --max-pods: "1\\r0"\n', 'extra-node-kubelet-args.max-pods', /carriage return/],
    ['a NUL byte', 'extra-node-etcd-args:\n  --quota-backend-bytes: "1\\0"\n', 'extra-node-etcd-args.quota-backend-bytes', /NUL/],
    ['a line separator', 'extra-node-kube-proxy-args:\n  --v: "2\\u2028--x=y"\n', 'extra-node-kube-proxy-args.v', /U\+2028/],
    ['a newline in a file name', 'extra-node-config-files:\n  "a\\nb": x\n', 'extra-node-config-files.a\nb', /newline/],
    ['a control character in file content', 'extra-node-config-files:\n  my.yaml: "a\\u0007b"\n', 'extra-node-config-files.my.yaml', /U\+0007/],
    ['a newline in an upstream nameserver', 'cluster-config:\n  dns:\n    enabled: true\n    upstream-nameservers: ["/etc/resolv.conf\\n}\\n. {"]\n', 'cluster-config.dns.upstream-nameservers', /newline/],
  ])('refuses %s, naming the key', (_name, text, key, reason) => {
    const e = bootstrapError(text);
    expect(e.key).toBe(key);
    expect(e.reason).toMatch(reason);
  });

  it('keeps multi-line file contents', () => {
    expect(parseBootstrapYaml('extra-node-config-files:\n  my.yaml: "a: 1\\n\\tb: 2\\r\\n"\n').configFiles).toEqual({ 'my.yaml': 'a: 1\n\tb: 2\r\n' });
  });

  it('refuses a newline in a worker join value', () => {
    expect(joinError('extra-node-k8s-apiserver-proxy-args:\n  --refresh-interval: "1s\\n--listen=0.0.0.0:6443"\n', 'worker').key).toBe('extra-node-k8s-apiserver-proxy-args.refresh-interval');
  });

  it('the args file writer refuses what validation would have (defence in depth)', () => {
    expect(() => renderArgsFile({ 'request-timeout': '1s\n--anonymous-auth=true' })).toThrow(ArgsFileError);
    expect(renderArgsFile({ v: '2' })).toBe('--v=2\n');
  });

  it('describes the character it found', () => {
    expect(controlCharacterProblem('ok')).toBeUndefined();
    expect(controlCharacterProblem('a\tb')).toMatch(/tab/);
  });

  it('checks accept lists too', () => {
    expect(() => checkArgOverrides({}, { etcd: ['client-cert-auth\n'] }, ['etcd'])).toThrow(/newline/);
  });
});

describe('generated files', () => {
  it.each(['kubelet-config.yaml', 'audit-policy.yaml', 'admission-control.yaml', 'k8s-apiserver-proxy.json', 'flannel-net-conf.json'])('refuses an extra file named %s', (name) => {
    const e = bootstrapError(`extra-node-config-files:\n  ${name}: "x"\n`);
    expect(e.key).toBe(`extra-node-config-files.${name}`);
    expect(e.reason).toMatch(/generates/);
    expect(joinError(`extra-node-config-files:\n  ${name}: "x"\n`, 'worker').key).toBe(`extra-node-config-files.${name}`);
  });

  it('refuses a path as a bootstrap file name', () => {
    expect(bootstrapError('extra-node-config-files:\n  ../../etc/x: "x"\n').key).toBe('extra-node-config-files.../../etc/x');
  });
});

describe('containerd config', () => {
  it('refuses a key that would start a new TOML line, naming its path', () => {
    const e = bootstrapError('extra-node-containerd-config:\n  plugins:\n    "a\\n[plugins.x]": 1\n');
    expect(e.key).toBe('extra-node-containerd-config.plugins.a\n[plugins.x]');
    expect(e.reason).toMatch(/newline/);
    expect(joinError('extra-node-containerd-config:\n  "x\\ry": 1\n', 'worker').key).toBe('extra-node-containerd-config.x\ry');
  });
});
