import { Args, Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, timeoutFlagWith, timeoutMsOf } from '../base.js';

export default class RemoveNode extends K8sCommand {
  static override summary = 'Remove a node from the cluster (run on a control-plane node)';
  static override description =
    "Removes the node's datastore member, its records and its Kubernetes Node, then tells the node to stop its services and delete its certificates and data; k8sd keeps running there so the node can join again. Refuses to remove a control-plane node when the datastore would lose quorum, or the last control-plane node, unless --force is given. A node may remove itself.";
  static override examples = [
    '$ sudo <%= config.bin %> remove-node w1',
    '$ sudo <%= config.bin %> remove-node cp3 --force',
    { description: 'Leave the cluster:', command: '$ sudo <%= config.bin %> remove-node "$(hostname)"' },
  ];
  static override args = {
    name: Args.string({ description: 'name of the node to remove', required: true }),
  };
  static override flags = {
    force: Flags.boolean({ description: 'remove even if quorum checks fail or the node is unreachable; on a node whose cluster is gone, clean up locally' }),
    timeout: timeoutFlagWith('5m'),
    'output-format': outputFormatFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(RemoveNode);
    const timeoutMs = timeoutMsOf(flags.timeout);
    const { MembershipClient } = await import('../../client/membership.js');
    const r = await new MembershipClient(this.client(timeoutMs)).remove({ name: args.name, force: flags.force });
    for (const w of r.warnings) this.logToStderr(`Warning: ${w}`);
    await this.render(r, flags['output-format'] as OutputFormat, () =>
      r.self ? `Node "${r.removed}" removed itself from the cluster; its services are stopping and its cluster files are being deleted.` : `Removed node "${r.removed}".`,
    );
  }
}
