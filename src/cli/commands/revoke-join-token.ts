import { Args } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class RevokeJoinToken extends K8sCommand {
  static override summary = 'Revoke a join token that has not been used yet';
  static override examples = ['$ sudo <%= config.bin %> revoke-join-token cp2'];
  static override args = { name: Args.string({ description: 'name of the token (see "k8s list-join-tokens")', required: true }) };
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(RevokeJoinToken);
    const { MembershipClient } = await import('../../client/membership.js');
    const r = await new MembershipClient(this.client()).revokeToken(args.name);
    await this.render(r, flags['output-format'] as OutputFormat, () => `Revoked join token "${r.revoked}".`);
  }
}
