import { Flags } from '@oclif/core';
import { K8sCommand } from '../base.js';

export default class Config extends K8sCommand {
  static override summary = 'Print the admin kubeconfig';
  static override examples = ['<%= config.bin %> config > ~/.kube/config', '<%= config.bin %> config --server 10.0.0.5:6443'];
  static override flags = {
    server: Flags.string({ description: 'API server address to put in the kubeconfig (default: this node)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Config);
    const { kubeconfig } = await this.client().kubeconfig(flags.server);
    process.stdout.write(kubeconfig);
  }
}
