import { Args } from '@oclif/core';
import { K8sCommand } from '../base.js';
import { installAdvice } from '../../install.js';
import { collectInspection, defaultBundleName, InspectError, K8SD_LOG_LINES, LOG_LINES } from '../../inspect/collect.js';

export default class Inspect extends K8sCommand {
  static override summary = 'Collect a diagnostics bundle of this node (tar.gz, mode 0600)';
  static override description =
    `The bundle holds k8s status, certificate expiry, features, etcd members and health, every service's args and last ${LOG_LINES} log lines (k8sd: ${K8SD_LOG_LINES}), nodes, pods and events in every namespace, and host facts. It never contains private keys, tokens, kubeconfig credentials or Secret data. Prints the bundle's path on its last line.`;
  static override examples = ['$ sudo <%= config.bin %> inspect', '$ sudo <%= config.bin %> inspect /tmp/report.tar.gz'];
  static override args = { file: Args.string({ description: 'where to write the bundle (default: ./k8s-inspect-<host>-<time>.tar.gz)' }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Inspect);
    if (process.getuid?.() !== 0) this.error(`k8s inspect reads service logs and args as root; run "${installAdvice(this.layout).k8s('inspect')}"`, { exit: 1 });
    try {
      const result = await collectInspection(this.layout, this.client(), args.file ?? defaultBundleName(), (m) => this.logToStderr(m));
      for (const [item, why] of Object.entries(result.errors)) this.logToStderr(`not collected: ${item}: ${why}`);
      this.log(`${result.entries.length} items collected${Object.keys(result.errors).length ? `, ${Object.keys(result.errors).length} not (listed in manifest.json)` : ''}`);
      this.log(result.file);
    } catch (err) {
      if (err instanceof InspectError) this.error(err.message, { exit: 1 });
      throw err;
    }
  }
}
