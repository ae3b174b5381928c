import { Args } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class Get extends K8sCommand {
  static override summary = 'Show feature settings: all of them, one feature\'s, or one key';
  static override examples = ['<%= config.bin %> get', '<%= config.bin %> get dns', '<%= config.bin %> get dns.service-ip'];
  static override args = { key: Args.string({ description: 'feature or feature.key' }) };
  static override flags = { 'output-format': outputFormatFlag };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Get);
    const { settings } = await this.client().getClusterConfig(args.key);
    const show = (v: unknown): string => (Array.isArray(v) ? v.join(',') : String(v));
    await this.render(settings, flags['output-format'] as OutputFormat, () =>
      settings !== null && typeof settings === 'object' && !Array.isArray(settings)
        ? Object.entries(settings as Record<string, unknown>).map(([k, v]) => `${k}: ${show(v)}`).join('\n')
        : show(settings),
      'as-is',
    );
  }
}
