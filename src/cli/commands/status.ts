import { Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, parseDuration, timeoutFlag } from '../base.js';
import type { ClusterStatus } from '../../api/index.js';

export default class Status extends K8sCommand {
  static override summary = 'Show the state of the cluster and of this node';
  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --wait-ready --timeout 2m', '<%= config.bin %> status --output-format json'];
  static override flags = {
    'wait-ready': Flags.boolean({ description: 'wait until the cluster is ready' }),
    timeout: timeoutFlag,
    'output-format': outputFormatFlag,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Status);
    const client = this.client();
    const deadline = Date.now() + parseDuration(flags.timeout, 'timeout');
    let st: ClusterStatus = await client.status();
    while (flags['wait-ready'] && !st.ready && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      st = await client.status();
    }
    await this.render(st, flags['output-format'] as OutputFormat, () => plain(st));
    if (st.role === 'none') this.exit(1);
    if (flags['wait-ready'] && !st.ready) this.error('the cluster did not become ready in time', { exit: 1 });
  }
}

/** Security-critical flags weakened by the operator: one line each, so nobody misses them. */
function insecureOverrides(st: ClusterStatus): string[] {
  const weakened = st['insecure-overrides'] ?? [];
  if (!weakened.length) return ['insecure overrides:       none'];
  return weakened.map(
    (w, i) => `${i === 0 ? 'insecure overrides:       ' : '                          '}${w.service} --${w.flag}${w.value === null ? ' (removed)' : `=${w.value}`} (accepted in accept-insecure-node-args)`,
  );
}

function plain(st: ClusterStatus): string {
  if (st.role === 'none') return 'Error: this node is not part of a cluster; run "k8s bootstrap" or "k8s join-cluster"';
  const members = st.datastore.members.map((m) => `${m.name} ${m.address} (${m.role})`);
  const lines = [
    `cluster status:           ${st.ready ? 'ready' : 'not ready'}`,
    `node:                     ${st['node-name']} (${st.role}, ${st.address})`,
    `high availability:        ${st.ha ? 'yes' : 'no'}`,
    `datastore:                ${st.datastore.type}${st.datastore.error ? ` (${st.datastore.error})` : ''}`,
    ...members.map((m, i) => `${i === 0 ? 'datastore members:        ' : '                          '}${m}`),
    `fips:                     ${st.fips?.enabled ? `enabled (${st.fips.provider} ${st.fips.version})` : 'disabled'}`,
    ...(st.fips?.goModules ? [`go fips module:           ${Object.entries(st.fips.goModules).map(([k, v]) => `${k} ${v}`).join(', ')}`] : []),
    `node status:              ${st['node-ready'] ? 'Ready' : 'NotReady'}`,
    ...insecureOverrides(st),
    ...(st.features ?? []).map((f) => `${`${f.name}:`.padEnd(26)}${f.message}`),
    `versions:                 ${Object.entries(st.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    'services:',
    ...st.services.map((s) => `  ${s.name.padEnd(24)}${s.state}${s.pid ? ` (pid ${s.pid})` : ''}${s.restarts ? `, ${s.restarts} restarts` : ''}`),
  ];
  return lines.join('\n');
}
