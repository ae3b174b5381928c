import { Args, Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, parseDuration } from '../base.js';

export default class GetJoinToken extends K8sCommand {
  static override summary = 'Issue a single-use token for a node to join this cluster';
  // One line per paragraph: oclif wraps each line to the terminal on its own (tests/unit/cli-help.test.ts).
  static override description = [
    "The token names the node it is for (for workers the name is optional), expires, and can be used once. It carries the addresses and certificate fingerprints of the control-plane nodes, so the joining node verifies the cluster before it sends the token's secret. k8sd keeps only a hash of the secret: the token cannot be shown again (revoke it and ask again).",
    'The joining node must join with the address its connections to the cluster come from. When it cannot (it sits behind NAT, or connects out through another interface), name the address it will join with here (--address): the cluster then accepts that address instead.',
  ].join('\n\n');
  static override examples = [
    '$ sudo <%= config.bin %> get-join-token cp2',
    '$ sudo <%= config.bin %> get-join-token w1 --worker --expires-in 2h',
    '$ sudo <%= config.bin %> get-join-token --worker --output-format json',
    '$ sudo <%= config.bin %> get-join-token w2 --worker --address 192.0.2.20',
  ];
  static override args = {
    name: Args.string({ description: 'name of the node that will join (required for control-plane nodes)' }),
  };
  static override flags = {
    worker: Flags.boolean({ description: 'the node joins as a worker' }),
    'expires-in': Flags.string({ description: 'how long the token stays valid (1s to 365d), e.g. 30m, 24h, 7d', default: '24h' }),
    address: Flags.string({ description: 'the address the node will join with, when its connections come from another one (NAT); without it the join address must be the source address of its connection' }),
    'output-format': outputFormatFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(GetJoinToken);
    const ttl = Math.round(parseDuration(flags['expires-in'], 'expires-in') / 1000);
    if (!flags.worker && !args.name) this.error('a control-plane token needs the name of the node that will join: k8s get-join-token <node-name>', { exit: 2 });
    const { MembershipClient } = await import('../../client/membership.js');
    const t = await new MembershipClient(this.client()).issueToken({
      ...(args.name ? { name: args.name } : {}),
      worker: flags.worker,
      expiresInSeconds: ttl,
      ...(flags.address ? { address: flags.address } : {}),
    });
    await this.render(t, flags['output-format'] as OutputFormat, () => t.token);
  }
}
