import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class ListJoinTokens extends K8sCommand {
  static override summary = 'List the join tokens that have not been used yet';
  static override description = 'Shows their names, roles and expiry; never their secrets.';
  static override examples = ['$ sudo <%= config.bin %> list-join-tokens', '$ sudo <%= config.bin %> list-join-tokens --output-format json'];
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { flags } = await this.parse(ListJoinTokens);
    const { MembershipClient } = await import('../../client/membership.js');
    const tokens = await new MembershipClient(this.client()).listTokens();
    await this.render(tokens, flags['output-format'] as OutputFormat, () => {
      if (!tokens.length) return 'No open join tokens.';
      const rows = [['NAME', 'ROLE', 'EXPIRES', 'STATUS'], ...tokens.map((t) => [t.name, t.role, t.expiresAt, t.expired ? 'expired' : 'valid'])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]! + 2)).join('').trimEnd()).join('\n');
    });
  }
}
