import { Args } from '@oclif/core';
import { Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat } from '../base.js';

export default class SecretsEncryption extends K8sCommand {
  static override description = 'Secrets encryption at rest: show status, rotate the key, or re-encrypt every Secret';
  static override examples = [
    '<%= config.bin %> secrets-encryption status',
    'sudo <%= config.bin %> secrets-encryption rotate          # new key, then re-encrypt every Secret',
    'sudo <%= config.bin %> secrets-encryption reencrypt',
  ];
  static override args = {
    action: Args.string({ description: 'status | rotate | reencrypt', options: ['status', 'rotate', 'reencrypt'], required: true }),
  };
  static override flags = {
    'output-format': outputFormatFlag,
    'no-reencrypt': Flags.boolean({ description: 'rotate only; re-encrypt later' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SecretsEncryption);
    const client = this.client(600_000);
    const format = flags['output-format'] as OutputFormat;
    if (args.action === 'status') {
      const st = await client.call<Record<string, unknown>>('GET', '/1.0/k8sd/secrets-encryption');
      await this.render(st, format, () => JSON.stringify(st, null, 2));
    } else if (args.action === 'rotate') {
      const r = await client.call<{ keyId: string; rewritten?: number; failed?: number }>('POST', '/1.0/k8sd/secrets-encryption/rotate', { reencrypt: !flags['no-reencrypt'] });
      await this.render(r, format, () => `New key ${r.keyId}.${r.rewritten !== undefined ? ` Re-encrypted ${r.rewritten} Secrets (${r.failed} failed).` : ''}`);
    } else {
      const r = await client.call<{ rewritten: number; failed: number }>('POST', '/1.0/k8sd/secrets-encryption/reencrypt');
      await this.render(r, format, () => `Re-encrypted ${r.rewritten} Secrets (${r.failed} failed).`);
    }
  }
}
