import { Args } from '@oclif/core';
import { K8sCommand } from '../base.js';
import { completionScript, Shell, SHELLS } from '../completion.js';

export default class Completion extends K8sCommand {
  static override summary = 'Print a shell completion script for k8s (bash, zsh, fish or powershell)';
  static override examples = [
    '$ source <(<%= config.bin %> completion bash)',
    '<%= config.bin %> completion zsh > "${fpath[1]}/_<%= config.bin %>"',
    '<%= config.bin %> completion fish > ~/.config/fish/completions/<%= config.bin %>.fish',
    '<%= config.bin %> completion powershell >> $PROFILE',
  ];
  static override args = { shell: Args.string({ description: 'the shell', required: true, options: [...SHELLS] }) };

  async run(): Promise<void> {
    const { args } = await this.parse(Completion);
    const commands = this.config.commands
      .filter((c) => !c.hidden && c.id !== 'completion' && !c.id.startsWith('autocomplete'))
      .map((c) => ({
        id: c.id,
        description: c.summary ?? c.description ?? '',
        flags: Object.entries(c.flags)
          .filter(([, f]) => !f.hidden)
          .map(([name, f]) => ({ name, description: f.summary ?? f.description ?? '' })),
      }));
    process.stdout.write(completionScript(args.shell as Shell, this.config.bin, commands));
  }
}
