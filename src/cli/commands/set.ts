import { Args } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class Set extends K8sCommand {
  static override summary = 'Change feature settings (Canonical Kubernetes key names)';
  static override description = 'Every change is checked before any is made.';
  static override strict = false;
  static override examples = [
    '<%= config.bin %> set dns.upstream-nameservers=1.1.1.1,9.9.9.9',
    '<%= config.bin %> set dns.service-ip=10.152.183.53',
    '<%= config.bin %> set network.enabled=true dns.enabled=true',
  ];
  static override args = { changes: Args.string({ description: 'key=value, e.g. dns.cluster-domain=cluster.local', required: true }) };
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Set);
    const changes: Record<string, string> = {};
    for (const pair of argv as string[]) {
      const eq = pair.indexOf('=');
      if (eq <= 0) this.error(`"${pair}" is not key=value; write it like dns.upstream-nameservers=1.1.1.1`, { exit: 1 });
      changes[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    const { settings } = await this.client().setClusterConfig(changes);
    const changed = Object.fromEntries(Object.keys(changes).map((k) => [k, settings[k]]));
    await this.render(changed, flags['output-format'] as OutputFormat, () => Object.entries(changed).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join('\n'), 'as-is');
  }
}
