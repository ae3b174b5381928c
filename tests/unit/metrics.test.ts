import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bearerMatches, ensureMetricsToken, MembershipObserver, renderMetrics } from '../../src/k8sd/metrics.js';

const dir = mkdtempSync(path.join(tmpdir(), 'k8sd-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('k8sd metrics', () => {
  it('renders certificate expiry, members, join/removal counts and features in the Prometheus text format', () => {
    const text = renderMetrics({
      certificates: [{ name: 'apiserver.crt', notAfter: new Date('2027-01-01T00:00:00Z') }, { name: 'etcd/ca.crt', notAfter: new Date(1_900_000_000_000) }],
      members: [{ name: 'cp0', role: 'control-plane' }, { name: 'w0', role: 'worker' }, { name: 'cp1', role: 'control-plane' }],
      joins: 2,
      removals: 1,
      features: [{ name: 'dns', enabled: true, ready: false }, { name: 'gateway', enabled: false, ready: true }],
    });
    expect(text).toContain('k8sd_certificate_expiry_seconds{certificate="apiserver.crt"} 1798761600\n');
    expect(text).toContain('k8sd_certificate_expiry_seconds{certificate="etcd/ca.crt"} 1900000000\n');
    expect(text).toContain('k8sd_cluster_members{role="control-plane"} 2\nk8sd_cluster_members{role="worker"} 1\n');
    expect(text).toContain('k8sd_node_joins_observed_total 2\n');
    expect(text).toContain('k8sd_node_removals_observed_total 1\n');
    expect(text).toContain('k8sd_feature_enabled{feature="dns"} 1\n');
    expect(text).toContain('k8sd_feature_ready{feature="dns"} 0\n');
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) k8sd_\w+ .+|k8sd_\w+(\{[a-z]+="[^"]*"\})? \d+)$/);
  });

  it('counts members appearing and leaving between observations, not the first sight', () => {
    const observer = new MembershipObserver();
    observer.observe(['cp0', 'cp1']);
    expect([observer.joins, observer.removals]).toEqual([0, 0]);
    observer.observe(['cp0', 'cp1', 'w0']);
    observer.observe(['cp0', 'w0']);
    expect([observer.joins, observer.removals]).toEqual([1, 1]);
  });

  it('accepts only the exact bearer token', () => {
    expect(bearerMatches('Bearer abc123', 'abc123')).toBe(true);
    expect(bearerMatches('bearer abc123', 'abc123')).toBe(true);
    expect(bearerMatches('Bearer abc124', 'abc123')).toBe(false);
    expect(bearerMatches('abc123', 'abc123')).toBe(false);
    expect(bearerMatches(undefined, 'abc123')).toBe(false);
    expect(bearerMatches('Bearer ', '')).toBe(false);
  });

  it('keeps the token in a 0600 file and returns the same one afterwards', () => {
    const file = path.join(dir, 'state', 'metrics-token');
    const token = ensureMetricsToken(file);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(ensureMetricsToken(file)).toBe(token);
  });
});
