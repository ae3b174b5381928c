import { Args } from '@oclif/core';
import { Flags } from '@oclif/core';
import { local, type EncryptionStatus } from '../../api/index.js';
import { K8sCommand, outputFormatFlag, OutputFormat, timeoutMsOf, timeoutFlagWith } from '../base.js';

function describeStatus(st: EncryptionStatus): string {
  const lines = [`provider: ${st.provider}`, `write key: ${st.writeKeyId ?? '-'}`, `stage: ${st.stage}`];
  if (st.controlPlane) {
    lines.push(`control-plane keys: ${st.controlPlane.keysAgree ? 'in agreement' : 'NOT in agreement'}`);
    for (const n of st.controlPlane.nodes) {
      if (n.error) lines.push(`  ${n.name}: unreachable (${n.error})`);
      else {
        const staged = n.stagedKeyIds?.length ? `, staged ${n.stagedKeyIds.join(', ')}` : '';
        lines.push(`  ${n.name}: writes ${n.writeKeyId}, holds ${n.keyIds?.join(', ')}${staged}`);
      }
    }
  }
  return lines.join('\n');
}

export default class SecretsEncryption extends K8sCommand {
  static override summary = 'Encryption of Secrets at rest: status, key rotation, re-encryption';
  static override description = 'status shows the keys in use; rotate puts a new key on every control-plane node, then re-encrypts every Secret with it; reencrypt re-encrypts every Secret with the current key.';
  static override examples = [
    '<%= config.bin %> secrets-encryption status',
    { description: 'A new key on every control-plane node, then every Secret re-encrypted:', command: '$ sudo <%= config.bin %> secrets-encryption rotate' },
    '$ sudo <%= config.bin %> secrets-encryption reencrypt',
  ];
  static override args = {
    action: Args.string({ description: 'status | rotate | reencrypt', options: ['status', 'rotate', 'reencrypt'], required: true }),
  };
  static override flags = {
    'output-format': outputFormatFlag,
    timeout: timeoutFlagWith('10m'),
    'no-reencrypt': Flags.boolean({ description: 'rotate only; re-encrypt later' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(SecretsEncryption);
    const client = this.client(timeoutMsOf(flags.timeout));
    const format = flags['output-format'] as OutputFormat;
    if (args.action === 'status') {
      const st = await client.call(local.encryptionStatus);
      await this.render(st, format, () => describeStatus(st));
    } else if (args.action === 'rotate') {
      const r = await client.call(local.rotateEncryptionKey, { reencrypt: !flags['no-reencrypt'] });
      await this.render(r, format, () =>
        `New key ${r.keyId} (was ${r.previousKeyId}), writing on ${r.nodes.join(', ')}.` +
          (r.rewritten !== undefined ? ` Re-encrypted ${r.rewritten} Secrets (${r.failed} failed).` : ''),
      );
    } else {
      const r = await client.call(local.reencryptSecrets);
      await this.render(r, format, () => `Re-encrypted ${r.rewritten} Secrets (${r.failed} failed).`);
    }
  }
}
