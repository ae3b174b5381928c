import { K8sCommand } from '../base.js';

export default class RotateCertsCa extends K8sCommand {
  static override description = 'Rotate the cluster CAs online: trust the new CAs, re-issue every certificate, then retire the old CAs';
  static override examples = ['sudo <%= config.bin %> rotate-certs-ca'];

  async run(): Promise<void> {
    await this.parse(RotateCertsCa);
    const result = await this.client(600_000).stream('POST', '/1.0/k8sd/rotate-ca', {}, (e) => {
      if (e.type === 'step') this.logToStderr(`rotate-certs-ca: ${e.title}`);
    });
    const cas = result.cas as Record<string, string>;
    this.log(`Rotated ${Object.entries(cas).map(([k, v]) => `${k} (now ${v})`).join(', ')}. The old CAs are no longer trusted.`);
  }
}
