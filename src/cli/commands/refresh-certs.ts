import { Flags } from '@oclif/core';
import { local, type RefreshResult } from '../../api/index.js';
import { K8sCommand, parseDuration, readFlagFile, timeoutFlagWith, timeoutMsOf } from '../base.js';


export default class RefreshCerts extends K8sCommand {
  static override summary = 'Re-issue the certificates of this node (or install externally managed ones)';
  static override examples = [
    '$ sudo <%= config.bin %> refresh-certs --expires-in 1y',
    { description: 'Only the API server certificate, with one more name:', command: '$ sudo <%= config.bin %> refresh-certs --expires-in 90d --certificates apiserver --extra-sans k8s.example.com' },
    '$ sudo <%= config.bin %> refresh-certs --external-certificates certs.yaml',
  ];
  static override flags = {
    'expires-in': Flags.string({ description: 'lifetime of the new certificates (1h, 30d, 4mo, 1y)', exclusive: ['external-certificates'] }),
    'extra-sans': Flags.string({ description: 'extra subject alternative names for server certificates', multiple: true, exclusive: ['external-certificates'] }),
    certificates: Flags.string({ description: 'only these certificates (e.g. apiserver, admin.conf)', multiple: true, exclusive: ['external-certificates'] }),
    timeout: timeoutFlagWith('5m'),
    'external-certificates': Flags.string({ description: 'YAML file (or -) with <name>-crt/<name>-key pairs signed by the cluster CAs' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(RefreshCerts);
    const client = this.client(timeoutMsOf(flags.timeout));
    let res: RefreshResult;
    if (flags['external-certificates']) {
      const f = flags['external-certificates'];
      res = await client.call(local.installExternalCerts, { certificates: readFlagFile('external-certificates', f) });
    } else {
      if (!flags['expires-in']) this.error('--expires-in is required (for example --expires-in 1y), or use --external-certificates', { exit: 2 });
      const ms = parseDuration(flags['expires-in'], 'expires-in');
      res = await client.call(local.refreshCerts, {
        expirationSeconds: Math.floor(ms / 1000),
        ...(flags.certificates ? { certificates: flags.certificates } : {}),
        ...(flags['extra-sans'] ? { extraSANs: flags['extra-sans'] } : {}),
      });
    }
    this.log(`Refreshed ${res.certificates.join(', ')}.`);
    this.log(`The certificates expire at ${res.expires}.${res.restarted.length ? ` Restarted: ${res.restarted.join(', ')}.` : ''}`);
  }
}
