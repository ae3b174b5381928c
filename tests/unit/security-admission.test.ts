// AdmissionConfiguration (PodSecurity + EventRateLimit) and the admission flags.
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import {
  DEFAULT_ADMISSION_SETTINGS,
  admissionArgs,
  admissionConfiguration,
  admissionConfigurationYaml,
  enabledAdmissionPlugins,
  files,
} from '../../src/security/admission.js';
import { SecuritySettingsError } from '../../src/security/errors.js';

const layout = new Layout({ K8S_ROOT: '/tmp/k8s-admission-test' });

interface PluginEntry { name: string; configuration: Record<string, unknown> }
interface Parsed { apiVersion: string; kind: string; plugins: PluginEntry[] }
const parse = (text: string): Parsed => yaml.load(text) as Parsed;
const plugin = (doc: Parsed, name: string): Record<string, unknown> | undefined => doc.plugins.find((p) => p.name === name)?.configuration;

describe('AdmissionConfiguration', () => {
  it('parses back with PodSecurity baseline enforce, restricted audit/warn, latest, kube-system exempt', () => {
    const doc = parse(admissionConfigurationYaml());
    expect(doc.apiVersion).toBe('apiserver.config.k8s.io/v1');
    expect(doc.kind).toBe('AdmissionConfiguration');
    expect(plugin(doc, 'PodSecurity')).toEqual({
      apiVersion: 'pod-security.admission.config.k8s.io/v1',
      kind: 'PodSecurityConfiguration',
      defaults: {
        enforce: 'baseline', 'enforce-version': 'latest',
        audit: 'restricted', 'audit-version': 'latest',
        warn: 'restricted', 'warn-version': 'latest',
      },
      exemptions: { usernames: [], runtimeClasses: [], namespaces: ['kube-system'] },
    });
  });

  it('carries the EventRateLimit limits inline (server and per-namespace)', () => {
    expect(plugin(parse(admissionConfigurationYaml()), 'EventRateLimit')).toEqual({
      apiVersion: 'eventratelimit.admission.k8s.io/v1alpha1',
      kind: 'Configuration',
      limits: [
        { type: 'Server', qps: 50, burst: 100 },
        { type: 'Namespace', qps: 50, burst: 100, cacheSize: 2000 },
      ],
    });
  });

  it('is configurable: restricted everywhere, pinned version, more exemptions, a per-user limit', () => {
    const doc = admissionConfiguration({
      podSecurity: { enforce: 'restricted', version: 'v1.37', exemptions: { namespaces: ['kube-system', 'metallb-system'], usernames: ['system:serviceaccount:ci:builder'] } },
      eventRateLimit: { user: { qps: 10, burst: 20, cacheSize: 500 } },
    });
    const ps = doc.plugins[0]!.configuration as { defaults: Record<string, string>; exemptions: Record<string, string[]> };
    expect(ps.defaults).toMatchObject({ enforce: 'restricted', 'enforce-version': 'v1.37', audit: 'restricted', warn: 'restricted' });
    expect(ps.exemptions).toEqual({ usernames: ['system:serviceaccount:ci:builder'], runtimeClasses: [], namespaces: ['kube-system', 'metallb-system'] });
    const erl = doc.plugins[1]!.configuration as { limits: Array<{ type: string }> };
    expect(erl.limits.map((l) => l.type)).toEqual(['Server', 'Namespace', 'User']);
  });

  it('drops EventRateLimit from both the config and the plugin list when disabled', () => {
    const settings = { eventRateLimit: { enabled: false } };
    expect(admissionConfiguration(settings).plugins.map((p) => p.name)).toEqual(['PodSecurity']);
    expect(enabledAdmissionPlugins(settings)).not.toContain('EventRateLimit');
  });

  it('rejects invalid values by setting name', () => {
    expect(() => admissionConfiguration({ podSecurity: { enforce: 'strict' as never } })).toThrow(/admission.podSecurity.enforce/);
    expect(() => admissionConfiguration({ podSecurity: { version: '1.37' } })).toThrow(/admission.podSecurity.version/);
    expect(() => admissionConfiguration({ podSecurity: { exemptions: { namespaces: ['Kube_System'] } } })).toThrow(/exemptions.namespaces\[0\]/);
    expect(() => admissionConfiguration({ eventRateLimit: { server: { qps: 0, burst: 10 } } })).toThrow(/admission.eventRateLimit.server.qps/);
    expect(() => admissionConfiguration({ eventRateLimit: { namespace: { qps: 5, burst: 10, cacheSize: -1 } } })).toThrow(SecuritySettingsError);
  });
});

describe('admission flags', () => {
  it('enables NodeRestriction, EventRateLimit and DenyServiceExternalIPs, pointing at the config file', () => {
    expect(admissionArgs(layout)).toEqual({
      'enable-admission-plugins': 'NodeRestriction,EventRateLimit,DenyServiceExternalIPs',
      'admission-control-config-file': layout.conf('admission-control.yaml'),
    });
  });

  it('leaves AlwaysPullImages off by default (side-loaded images) and allows opting in', () => {
    expect(DEFAULT_ADMISSION_SETTINGS.alwaysPullImages).toBe(false);
    expect(enabledAdmissionPlugins()).not.toContain('AlwaysPullImages');
    expect(enabledAdmissionPlugins({ alwaysPullImages: true })).toContain('AlwaysPullImages');
  });

  it('never disables ServiceAccount/NamespaceLifecycle and never enables AlwaysAdmit (CIS 1.2.10, 1.2.12, 1.2.13)', () => {
    expect(Object.keys(admissionArgs(layout))).not.toContain('disable-admission-plugins');
    expect(() => enabledAdmissionPlugins({ extraPlugins: ['AlwaysAdmit'] })).toThrow(/CIS 1.2.10/);
    expect(() => enabledAdmissionPlugins({ extraPlugins: ['AlwaysDeny'] })).toThrow(SecuritySettingsError);
  });

  it('accepts known extra plugins once, and names typos', () => {
    expect(enabledAdmissionPlugins({ extraPlugins: ['PodNodeSelector', 'NodeRestriction'] })).toEqual(['NodeRestriction', 'EventRateLimit', 'DenyServiceExternalIPs', 'PodNodeSelector']);
    expect(() => enabledAdmissionPlugins({ extraPlugins: ['PodNodeSelecter'] })).toThrow(/admission.extraPlugins\[0\].*not a kube-apiserver admission plugin/);
    expect(() => enabledAdmissionPlugins({ extraPlugins: ['EventRateLimit'] })).toThrow(/own setting/);
  });

  it('writes the config 0600 where the flag points', () => {
    const [config] = files(layout);
    expect(config!.path).toBe(admissionArgs(layout)['admission-control-config-file']);
    expect(config!.mode).toBe(0o600);
    expect(parse(config!.content).kind).toBe('AdmissionConfiguration');
  });
});
