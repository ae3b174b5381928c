// Overrides that could undo a security default: extra-node-<service>-args may change a flag on the
// list below only when the same file names it under `accept-insecure-node-args`, and
// extra-node-config-files may never replace a file k8sd generates. Shared by the bootstrap and both
// join schemas, so every path that writes args files checks the same things.

/**
 * Security-critical flags per service. An entry ending in "-" is a prefix (every flag that starts
 * with it). Changing or deleting any of them needs an explicit opt-in; the reason is on each line.
 */
export const SECURITY_CRITICAL_FLAGS: Readonly<Record<string, readonly string[]>> = {
  'kube-apiserver': [
    'anonymous-auth', // CIS 1.2.1
    'authorization-', // authorization-mode, webhook config (CIS 1.2.6-1.2.8)
    'authentication-', // token webhooks, authentication config
    'token-auth-file', // static tokens (CIS 1.2.2)
    'enable-admission-plugins', // NodeRestriction, PodSecurity (CIS 1.2.9-1.2.14)
    'disable-admission-plugins',
    'admission-control-config-file',
    'encryption-provider-config', // Secrets at rest (CIS 1.2.27-1.2.28)
    'audit-policy-file', // what is recorded (CIS 1.2.16); retention (audit-log-max*) is not on the list: the CIS run checks it
    'audit-log-path',
    'audit-webhook-',
    'client-ca-file', // who may authenticate with a certificate (CIS 1.2.25)
    'requestheader-', // who may assert an identity through the front proxy
    'proxy-client-',
    'tls-', // serving certificate, minimum version, ciphers (CIS 1.2.24, 1.2.29)
    'kubelet-certificate-authority', // CIS 1.2.5
    'kubelet-client-', // CIS 1.2.4
    'etcd-cafile', // CIS 1.2.23, 1.2.26
    'etcd-certfile',
    'etcd-keyfile',
    'service-account-', // token signing and lookup (CIS 1.2.21-1.2.22, 1.2.30)
    'profiling', // CIS 1.2.15
    'insecure-', // insecure-port, insecure-bind-address (removed upstream; refuse quietly reviving them)
  ],
  'kube-controller-manager': [
    'profiling', // CIS 1.3.2
    'use-service-account-credentials', // CIS 1.3.3
    'service-account-private-key-file', // CIS 1.3.4
    'root-ca-file', // CIS 1.3.5
    'bind-address', // CIS 1.3.7
    'cluster-signing-', // which CA signs CSRs
    'authentication-',
    'authorization-',
    'client-ca-file',
    'requestheader-',
    'tls-',
  ],
  'kube-scheduler': ['profiling', 'bind-address', 'authentication-', 'authorization-', 'client-ca-file', 'requestheader-', 'tls-'], // CIS 1.4
  kubelet: [
    'config', // the KubeletConfiguration file that carries the CIS 4.2 settings
    'kubeconfig',
    'anonymous-auth', // CIS 4.2.1
    'authentication-token-webhook',
    'authorization-mode', // CIS 4.2.2
    'client-ca-file', // CIS 4.2.3
    'read-only-port', // CIS 4.2.4
    'streaming-connection-idle-timeout', // CIS 4.2.5
    'protect-kernel-defaults', // CIS 4.2.6
    'make-iptables-util-chains', // CIS 4.2.7
    'hostname-override', // CIS 4.2.8
    'tls-', // CIS 4.2.9-4.2.12
    'rotate-certificates', // CIS 4.2.11
    'rotate-server-certificates',
    'pod-max-pids', // CIS 4.2.13
    'seccomp-default', // CIS 4.2.14
  ],
  'kube-proxy': ['kubeconfig', 'profiling'],
  etcd: [
    'client-cert-auth', // CIS 2.2
    'peer-client-cert-auth', // CIS 2.5
    'auto-tls', // CIS 2.3
    'peer-auto-tls', // CIS 2.6
    'trusted-ca-file', // CIS 2.7
    'peer-trusted-ca-file',
    'cert-file', // CIS 2.1
    'key-file',
    'peer-cert-file', // CIS 2.4
    'peer-key-file',
    'client-crl-file',
    'peer-crl-file',
    'tls-min-version',
    'tls-max-version',
    'cipher-suites',
    'listen-client-urls', // an http:// URL here would serve etcd without TLS
    'listen-peer-urls',
    'listen-client-http-urls',
  ],
  containerd: ['config'], // config.toml carries the CRI's restrictions
  'k8s-apiserver-proxy': [],
};

/** Files k8sd generates under $SNAP_COMMON/args/conf.d; extra-node-config-files may not use these names. */
export const GENERATED_CONF_FILES = {
  kubeletConfig: 'kubelet-config.yaml',
  apiserverProxyEndpoints: 'k8s-apiserver-proxy.json',
  flannelNetConf: 'flannel-net-conf.json',
  auditPolicy: 'audit-policy.yaml',
  admissionControl: 'admission-control.yaml',
} as const;

const GENERATED_NAMES: ReadonlySet<string> = new Set(Object.values(GENERATED_CONF_FILES));

/** The key that lists the critical flags the operator accepts changing. */
export const ACCEPT_KEY = 'accept-insecure-node-args';

/** A flag an override changes though it is on the critical list, accepted by the operator. */
export interface WeakenedFlag {
  service: string;
  flag: string;
  /** The value the override sets; null when it deletes the flag. */
  value: string | null;
}

/** One refused override: the config key it is under and why. */
export class OverrideError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'OverrideError';
  }
}

// C0 controls and DEL, and the Unicode line and paragraph separators: any of these in a line-oriented
// file (an args file, a Corefile) starts a new line or hides what follows.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f\u0085\u2028\u2029]/;
// File contents keep tabs and line ends; the other controls are refused.
// eslint-disable-next-line no-control-regex
const CONTENT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/** A readable name for the first control character in a text, e.g. "a newline (\\n)". */
function describeControl(text: string, pattern: RegExp): string | undefined {
  const m = pattern.exec(text);
  if (!m) return undefined;
  const c = m[0];
  const named: Record<string, string> = { '\n': 'a newline (\\n)', '\r': 'a carriage return (\\r)', '\t': 'a tab (\\t)', '\u0000': 'a NUL byte' };
  return named[c] ?? `the control character U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The reason a one-line value is refused, or undefined when it is fine. */
export function controlCharacterProblem(text: string): string | undefined {
  const what = describeControl(text, CONTROL);
  return what ? `contains ${what}; a value must be a single line without control characters (write several values comma-separated)` : undefined;
}

/** Throws an OverrideError naming `key` when `text` holds a newline or another control character. */
export function assertSingleLine(key: string, text: string): void {
  const problem = controlCharacterProblem(text);
  if (problem) throw new OverrideError(key, problem);
}

/** Whether `flag` (without dashes) is security-critical for `service`. */
export function isSecurityCritical(service: string, flag: string): boolean {
  return (SECURITY_CRITICAL_FLAGS[service] ?? []).some((rule) => (rule.endsWith('-') ? flag.startsWith(rule) : flag === rule));
}

const bare = (flag: string): string => flag.replace(/^-+/, '');

/**
 * Checks the extra args of every service against the accept list and returns the flags the config
 * weakens (accepted). `extraArgs` maps a service to its overrides (flag names already without
 * dashes); `accepted` is the raw `accept-insecure-node-args` mapping. Throws an OverrideError naming
 * the key when a critical flag is changed without acceptance, when an acceptance names a flag that
 * is not critical or not overridden, or when a key or value holds a control character.
 */
export function checkArgOverrides(
  extraArgs: Partial<Record<string, Record<string, string | null>>>,
  accepted: Partial<Record<string, readonly string[]>> | undefined,
  services: readonly string[],
): WeakenedFlag[] {
  const acceptedSets = new Map<string, Set<string>>();
  for (const [svc, flags] of Object.entries(accepted ?? {})) {
    if (!services.includes(svc)) throw new OverrideError(`${ACCEPT_KEY}.${svc}`, `unknown service; use one of ${services.join(', ')}`);
    const set = new Set<string>();
    for (const [i, raw] of (flags ?? []).entries()) {
      const where = `${ACCEPT_KEY}.${svc}[${i}]`;
      assertSingleLine(where, raw);
      const flag = bare(raw);
      if (!isSecurityCritical(svc, flag)) {
        throw new OverrideError(where, `--${flag} is not a security-critical flag of ${svc}; it needs no acceptance, remove it from ${ACCEPT_KEY}`);
      }
      const overrides = extraArgs[svc] ?? {};
      if (!(flag in overrides)) {
        throw new OverrideError(where, `--${flag} is accepted but extra-node-${svc}-args does not change it; remove it from ${ACCEPT_KEY}`);
      }
      set.add(flag);
    }
    acceptedSets.set(svc, set);
  }

  const weakened: WeakenedFlag[] = [];
  for (const svc of services) {
    for (const [flag, value] of Object.entries(extraArgs[svc] ?? {})) {
      const key = `extra-node-${svc}-args.${flag}`;
      assertSingleLine(key, flag);
      if (value !== null) assertSingleLine(key, value);
      if (!isSecurityCritical(svc, flag)) continue;
      if (!acceptedSets.get(svc)?.has(flag)) {
        const change = value === null ? 'deletes' : `sets --${flag}=${value}, which changes`;
        throw new OverrideError(
          key,
          `${change} a security-critical default of ${svc}. If you mean to weaken it, also list it in the same file: ` +
            `"${ACCEPT_KEY}: {${svc}: [${flag}]}" (k8sd logs it and "k8s status" shows it); otherwise remove the override`,
        );
      }
      weakened.push({ service: svc, flag, value });
    }
  }
  return weakened;
}

/** Checks extra-node-config-files: plain names, not one k8sd generates, contents without stray control characters. */
export function checkConfigFiles(files: Record<string, string> | undefined): void {
  for (const [name, content] of Object.entries(files ?? {})) {
    const key = `extra-node-config-files.${name}`;
    assertSingleLine(key, name);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
      throw new OverrideError(key, 'file names are plain names (letters, digits, ".", "_", "-"; no "/"), written under $SNAP_COMMON/args/conf.d');
    }
    if (GENERATED_NAMES.has(name)) {
      throw new OverrideError(
        key,
        `k8sd generates ${name} itself and an extra file may not replace it; choose another name (and point the component at it with its flag, accepting that flag in ${ACCEPT_KEY} if it is security-critical)`,
      );
    }
    const what = describeControl(content, CONTENT_CONTROL);
    if (what) throw new OverrideError(key, `the content contains ${what}; config files are text (tabs and line ends only)`);
  }
}

/** Checks every key of extra-node-containerd-config (merged into config.toml): one line each. */
export function checkContainerdConfig(config: Record<string, unknown> | undefined, where = 'extra-node-containerd-config'): void {
  for (const [k, v] of Object.entries(config ?? {})) {
    const key = `${where}.${k}`;
    assertSingleLine(key, k);
    if (typeof v === 'string') assertSingleLine(key, v);
    else if (v && typeof v === 'object' && !Array.isArray(v)) checkContainerdConfig(v as Record<string, unknown>, key);
  }
}
