// kube-apiserver audit logging: the policy (audit.k8s.io/v1) and its flags.
// CIS 1.2.16–1.2.19 (log path and rotation) and 3.2.1–3.2.2 (policy and its coverage).
import path from 'node:path';
import { GENERATED_CONF_FILES } from '../config/overrides.js';
import type { Layout } from '../layout.js';
import type { Args } from '../services/args.js';
import { SecuritySettingsError } from './errors.js';
import { SECRET_FILE_MODE, toYaml, type SecurityFile } from './files.js';

export type AuditLevel = 'None' | 'Metadata' | 'Request' | 'RequestResponse';
export type AuditDetail = 'Policy' | 'Metadata' | 'None';

export interface AuditSettings {
  /** false: no policy, no audit flags (CIS 1.2.16–19 and 3.2.1 then fail). */
  enabled: boolean;
  /**
   * Most detail any rule may log. 'Policy' keeps the policy as designed (up to
   * RequestResponse for RBAC changes); 'Metadata' caps every rule at Metadata; 'None'
   * keeps the flags (so CIS 1.2.16–19 and 3.2.1 still pass) but the policy logs nothing.
   */
  level: AuditDetail;
  maxAgeDays: number;
  maxBackups: number;
  maxSizeMB: number;
}

export const DEFAULT_AUDIT_SETTINGS: Readonly<AuditSettings> = Object.freeze({
  enabled: true,
  level: 'Policy',
  maxAgeDays: 30,
  maxBackups: 10,
  maxSizeMB: 100,
});

export interface AuditPaths {
  policyFile: string;
  logFile: string;
}

export function auditPaths(layout: Layout): AuditPaths {
  return { policyFile: layout.conf(GENERATED_CONF_FILES.auditPolicy), logFile: path.join(layout.auditLogDir, 'audit.log') };
}

export interface AuditGroupResources {
  group: string;
  resources?: string[];
}

export interface AuditPolicyRule {
  level: AuditLevel;
  users?: string[];
  userGroups?: string[];
  verbs?: string[];
  resources?: AuditGroupResources[];
  namespaces?: string[];
  nonResourceURLs?: string[];
  omitStages?: string[];
}

export interface AuditPolicy {
  apiVersion: 'audit.k8s.io/v1';
  kind: 'Policy';
  omitStages: string[];
  rules: AuditPolicyRule[];
}

const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];
const LEVEL_ORDER: readonly AuditLevel[] = ['None', 'Metadata', 'Request', 'RequestResponse'];

/**
 * The policy as designed. The first matching rule wins, so the order matters:
 * noise first (None), then Metadata for everything that carries secrets, before any
 * rule that would log a request or response body.
 */
function fullPolicyRules(): AuditPolicyRule[] {
  return [
    // Health and version probes: high volume, no security value.
    { level: 'None', nonResourceURLs: ['/healthz*', '/readyz*', '/livez*', '/version', '/version/'] },
    // Control-plane chatter: leader-election and node heartbeats, the apiserver's own namespace checks.
    {
      level: 'None',
      users: ['system:kube-controller-manager', 'system:kube-scheduler'],
      verbs: ['get', 'update'],
      namespaces: ['kube-system'],
      resources: [{ group: 'coordination.k8s.io', resources: ['leases'] }],
    },
    {
      level: 'None',
      userGroups: ['system:nodes'],
      verbs: ['get', 'update'],
      resources: [{ group: 'coordination.k8s.io', resources: ['leases'] }],
    },
    {
      level: 'None',
      users: ['system:apiserver'],
      verbs: ['get'],
      resources: [{ group: '', resources: ['namespaces', 'namespaces/status', 'namespaces/finalize'] }],
    },
    {
      level: 'None',
      users: ['system:kube-proxy'],
      verbs: ['watch'],
      resources: [{ group: '', resources: ['endpoints', 'services', 'services/status'] }, { group: 'discovery.k8s.io', resources: ['endpointslices'] }],
    },
    // Secrets and anything that returns credentials: who and when, never the payload (CIS 3.2.2).
    {
      level: 'Metadata',
      resources: [
        { group: '', resources: ['secrets', 'configmaps', 'serviceaccounts/token'] },
        { group: 'authentication.k8s.io', resources: ['tokenreviews'] },
      ],
    },
    // Interactive access to workloads and nodes (CIS 3.2.2).
    {
      level: 'Metadata',
      resources: [{ group: '', resources: ['pods/exec', 'pods/attach', 'pods/portforward', 'pods/proxy', 'services/proxy', 'nodes/proxy'] }],
    },
    // Who changed which permission, with the full before/after.
    { level: 'RequestResponse', verbs: WRITE_VERBS, resources: [{ group: 'rbac.authorization.k8s.io' }] },
    // Changes to workloads, with the submitted spec (CIS 3.2.2: modification of Pods and Deployments).
    {
      level: 'Request',
      verbs: WRITE_VERBS,
      resources: [
        { group: '', resources: ['pods', 'replicationcontrollers'] },
        { group: 'apps', resources: ['deployments', 'daemonsets', 'statefulsets', 'replicasets'] },
        { group: 'batch', resources: ['jobs', 'cronjobs'] },
      ],
    },
    // Everything else, including RBAC reads: metadata only.
    { level: 'Metadata' },
  ];
}

function resolve(settings: Partial<AuditSettings>): AuditSettings {
  const resolved: AuditSettings = { ...DEFAULT_AUDIT_SETTINGS, ...settings };
  if (!['Policy', 'Metadata', 'None'].includes(resolved.level)) {
    throw new SecuritySettingsError('audit.level', `"${String(resolved.level)}" must be Policy, Metadata or None`);
  }
  for (const key of ['maxAgeDays', 'maxBackups', 'maxSizeMB'] as const) {
    const value = resolved[key];
    if (!Number.isInteger(value) || value < 1) throw new SecuritySettingsError(`audit.${key}`, `must be a positive whole number, got ${value}`);
  }
  return resolved;
}

/** The audit policy for these settings. */
export function auditPolicy(settings: Partial<AuditSettings> = {}): AuditPolicy {
  const resolved = resolve(settings);
  let rules: AuditPolicyRule[];
  if (resolved.level === 'None') rules = [{ level: 'None' }];
  else if (resolved.level === 'Metadata') rules = fullPolicyRules().map((rule) => (LEVEL_ORDER.indexOf(rule.level) > LEVEL_ORDER.indexOf('Metadata') ? { ...rule, level: 'Metadata' } : rule));
  else rules = fullPolicyRules();
  return { apiVersion: 'audit.k8s.io/v1', kind: 'Policy', omitStages: ['RequestReceived'], rules };
}

export function auditPolicyYaml(settings: Partial<AuditSettings> = {}): string {
  return toYaml(auditPolicy(settings));
}

/** kube-apiserver audit flags; empty when audit is disabled. */
export function auditArgs(layout: Layout, settings: Partial<AuditSettings> = {}): Args {
  const resolved = resolve(settings);
  if (!resolved.enabled) return {};
  const paths = auditPaths(layout);
  return {
    'audit-policy-file': paths.policyFile,
    'audit-log-path': paths.logFile,
    'audit-log-maxage': String(resolved.maxAgeDays),
    'audit-log-maxbackup': String(resolved.maxBackups),
    'audit-log-maxsize': String(resolved.maxSizeMB),
  };
}

/**
 * Files to write. kube-apiserver creates the log directory and a 0600 log file itself;
 * k8sd may pre-create layout.auditLogDir as 0700 (the log records who read which Secret).
 */
export function files(layout: Layout, settings: Partial<AuditSettings> = {}): SecurityFile[] {
  const resolved = resolve(settings);
  if (!resolved.enabled) return [];
  return [{ path: auditPaths(layout).policyFile, content: auditPolicyYaml(resolved), mode: SECRET_FILE_MODE }];
}
