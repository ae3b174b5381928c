// Audit policy levels per request, and the apiserver audit flags (CIS 1.2.16–1.2.19, 3.2.1–3.2.2).
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/layout.js';
import { auditArgs, auditPolicy, auditPolicyYaml, files, type AuditLevel, type AuditPolicy, type AuditPolicyRule, type AuditSettings } from '../../src/security/audit.js';
import { SecuritySettingsError } from '../../src/security/errors.js';

const layout = new Layout({ K8S_ROOT: '/tmp/k8s-audit-test' });

interface Request {
  user?: string;
  groups?: string[];
  verb: string;
  group?: string;
  resource?: string;
  namespace?: string;
  path?: string;
}

/** The apiserver's first-match evaluation, for the fields our policy uses. */
function levelFor(policy: AuditPolicy, request: Request): AuditLevel {
  const matches = (rule: AuditPolicyRule): boolean => {
    if (rule.users && !rule.users.includes(request.user ?? '')) return false;
    if (rule.userGroups && !rule.userGroups.some((g) => request.groups?.includes(g))) return false;
    if (rule.verbs && !rule.verbs.includes(request.verb)) return false;
    if (rule.namespaces && !rule.namespaces.includes(request.namespace ?? '')) return false;
    if (rule.nonResourceURLs) {
      if (!request.path) return false;
      return rule.nonResourceURLs.some((u) => (u.endsWith('*') ? request.path!.startsWith(u.slice(0, -1)) : request.path === u));
    }
    if (rule.resources) {
      if (request.resource === undefined) return false;
      return rule.resources.some((gr) => gr.group === (request.group ?? '') && (!gr.resources || gr.resources.includes(request.resource!)));
    }
    return true;
  };
  return policy.rules.find(matches)?.level ?? 'None';
}

describe('audit policy', () => {
  const policy = auditPolicy();

  it('parses back as an audit.k8s.io/v1 Policy that omits RequestReceived', () => {
    const parsed = yaml.load(auditPolicyYaml()) as AuditPolicy;
    expect(parsed).toEqual(policy);
    expect(parsed.apiVersion).toBe('audit.k8s.io/v1');
    expect(parsed.kind).toBe('Policy');
    expect(parsed.omitStages).toEqual(['RequestReceived']);
  });

  it.each(['/healthz', '/healthz/etcd', '/readyz', '/readyz/ping', '/livez', '/version'])('does not log %s', (p) => {
    expect(levelFor(policy, { verb: 'get', path: p, user: 'system:anonymous' })).toBe('None');
  });

  it.each([
    ['secrets', '', 'get'],
    ['secrets', '', 'create'],
    ['configmaps', '', 'update'],
    ['serviceaccounts/token', '', 'create'],
    ['tokenreviews', 'authentication.k8s.io', 'create'],
  ])('logs only metadata for %s (%s %s), never payloads', (resource, group, verb) => {
    expect(levelFor(policy, { user: 'alice', verb, group, resource, namespace: 'default' })).toBe('Metadata');
  });

  it('logs RBAC changes with request and response, RBAC reads as metadata', () => {
    for (const resource of ['roles', 'rolebindings', 'clusterroles', 'clusterrolebindings']) {
      expect(levelFor(policy, { user: 'alice', verb: 'create', group: 'rbac.authorization.k8s.io', resource })).toBe('RequestResponse');
      expect(levelFor(policy, { user: 'alice', verb: 'patch', group: 'rbac.authorization.k8s.io', resource })).toBe('RequestResponse');
      expect(levelFor(policy, { user: 'alice', verb: 'list', group: 'rbac.authorization.k8s.io', resource })).toBe('Metadata');
    }
  });

  it('covers exec, attach, port-forward and proxy (CIS 3.2.2)', () => {
    for (const resource of ['pods/exec', 'pods/attach', 'pods/portforward', 'pods/proxy', 'services/proxy', 'nodes/proxy']) {
      expect(levelFor(policy, { user: 'alice', verb: 'create', resource })).toBe('Metadata');
    }
  });

  it('records workload changes with the submitted object (CIS 3.2.2)', () => {
    expect(levelFor(policy, { user: 'alice', verb: 'create', resource: 'pods', namespace: 'default' })).toBe('Request');
    expect(levelFor(policy, { user: 'alice', verb: 'patch', group: 'apps', resource: 'deployments', namespace: 'default' })).toBe('Request');
    expect(levelFor(policy, { user: 'alice', verb: 'get', group: 'apps', resource: 'deployments', namespace: 'default' })).toBe('Metadata');
  });

  it('drops control-plane chatter but keeps the rest at metadata', () => {
    expect(levelFor(policy, { user: 'system:kube-scheduler', verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system' })).toBe('None');
    expect(levelFor(policy, { user: 'system:node:n1', groups: ['system:nodes'], verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease' })).toBe('None');
    expect(levelFor(policy, { user: 'system:kube-proxy', verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices' })).toBe('None');
    // The same lease written by anyone else is logged.
    expect(levelFor(policy, { user: 'alice', verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-system' })).toBe('Metadata');
    expect(levelFor(policy, { user: 'alice', verb: 'list', resource: 'nodes' })).toBe('Metadata');
    expect(policy.rules[policy.rules.length - 1]).toEqual({ level: 'Metadata' });
  });

  it('puts the secrets rule before any rule that logs bodies', () => {
    const secretsRule = policy.rules.findIndex((r) => r.resources?.some((gr) => gr.resources?.includes('secrets')));
    const firstBodyRule = policy.rules.findIndex((r) => r.level === 'Request' || r.level === 'RequestResponse');
    expect(secretsRule).toBeGreaterThanOrEqual(0);
    expect(secretsRule).toBeLessThan(firstBodyRule);
    // Even a hypothetical body rule matching everything could not reach secrets.
    expect(policy.rules.every((r) => r.level === 'None' || r.level === 'Metadata' || r.resources !== undefined)).toBe(true);
  });

  it('can be capped at Metadata, or log nothing', () => {
    const capped = auditPolicy({ level: 'Metadata' });
    expect(new Set(capped.rules.map((r) => r.level))).toEqual(new Set(['None', 'Metadata']));
    expect(levelFor(capped, { user: 'alice', verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'roles' })).toBe('Metadata');
    expect(auditPolicy({ level: 'None' }).rules).toEqual([{ level: 'None' }]);
  });
});

describe('audit flags and files', () => {
  it('sets policy file, log path under auditLogDir and 30/10/100 rotation', () => {
    expect(auditArgs(layout)).toEqual({
      'audit-policy-file': layout.conf('audit-policy.yaml'),
      'audit-log-path': `${layout.auditLogDir}/audit.log`,
      'audit-log-maxage': '30',
      'audit-log-maxbackup': '10',
      'audit-log-maxsize': '100',
    });
  });

  it('keeps the flags when the policy logs nothing, drops everything when disabled', () => {
    expect(Object.keys(auditArgs(layout, { level: 'None' }))).toContain('audit-log-path');
    expect(auditArgs(layout, { enabled: false })).toEqual({});
    expect(files(layout, { enabled: false })).toEqual([]);
  });

  it('writes the policy 0600 where the flag points', () => {
    const [policyFile] = files(layout);
    expect(policyFile!.path).toBe(auditArgs(layout)['audit-policy-file']);
    expect(policyFile!.mode).toBe(0o600);
    expect((yaml.load(policyFile!.content) as AuditPolicy).kind).toBe('Policy');
  });

  it('rejects bad settings by name', () => {
    expect(() => auditArgs(layout, { maxAgeDays: 0 })).toThrow(/audit.maxAgeDays/);
    expect(() => auditArgs(layout, { maxSizeMB: 1.5 })).toThrow(SecuritySettingsError);
    expect(() => auditPolicy({ level: 'RequestResponse' as AuditSettings['level'] })).toThrow(/audit.level/);
  });
});
