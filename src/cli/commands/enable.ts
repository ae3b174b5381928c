import { FeatureToggle, toggleArgs, toggleFlags } from './feature-toggle.js';

export default class Enable extends FeatureToggle {
  static override summary = 'Enable features (network, dns, …) and wait until they are ready';
  static override strict = false;
  static override examples = ['<%= config.bin %> enable dns', '<%= config.bin %> enable network dns --no-wait'];
  static override args = toggleArgs;
  static override flags = toggleFlags;
  protected readonly enable = true;

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Enable);
    await this.toggle(argv as string[], flags.wait, flags.timeout);
  }
}
