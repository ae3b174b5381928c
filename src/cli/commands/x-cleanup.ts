import { cleanupNode, CleanupRefused } from '../../host/cleanup.js';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class XCleanup extends K8sCommand {
  static override hidden = true;
  static override summary = 'Remove everything this node left on the host once k8sd is stopped';
  static override description =
    'It removes pod processes, mounts, cgroups, container log links, ' +
    'containerd shim sockets, network links and iptables chains (in its own network namespace), and its directories. ' +
    'Used by `npm run reset` and the snap remove hook.';
  static override examples = ['$ sudo <%= config.bin %> x-cleanup', '$ K8S_ROOT=/srv/node2 <%= config.bin %> x-cleanup --output-format json'];
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(XCleanup);
    let report;
    try {
      report = await cleanupNode(this.layout);
    } catch (err) {
      if (err instanceof CleanupRefused) this.error(err.message, { exit: 1 });
      throw err;
    }
    await this.render(report, flags['output-format'] as OutputFormat, () =>
      [
        `killed ${report.killed.length} processes, unmounted ${report.unmounted.length}, removed ${report.cgroupsRemoved.length} cgroups and ${report.removed.length} paths`,
        ...report.left.map((l) => `left behind: ${l}`),
      ].join('\n'),
    );
    if (report.left.length) this.exit(1);
  }
}
