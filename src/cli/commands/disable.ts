import { FeatureToggle, toggleArgs, toggleFlags } from './feature-toggle.js';

export default class Disable extends FeatureToggle {
  static override summary = 'Disable features: every object they deployed is removed';
  static override strict = false;
  static override examples = ['<%= config.bin %> disable dns'];
  static override args = toggleArgs;
  static override flags = toggleFlags;
  protected readonly enable = false;

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Disable);
    await this.toggle(argv as string[], flags.wait, flags.timeout);
  }
}
