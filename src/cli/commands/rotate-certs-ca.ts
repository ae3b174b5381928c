import { local } from '../../api/index.js';
import { K8sCommand, timeoutFlagWith, timeoutMsOf } from '../base.js';

export default class RotateCertsCa extends K8sCommand {
  static override summary = 'Rotate the cluster CAs online on every node';
  static override description =
    'Every node first trusts the new CAs, then every certificate is re-issued, then the old CAs are retired. Every node must answer first; a rotation that stopped resumes where it stopped when run again.';
  static override examples = ['$ sudo <%= config.bin %> rotate-certs-ca', '$ sudo <%= config.bin %> rotate-certs-ca --timeout 30m'];
  static override flags = { timeout: timeoutFlagWith('10m') };

  async run(): Promise<void> {
    const { flags } = await this.parse(RotateCertsCa);
    // Node lines are indented: scripts that read the phase lines match "rotate-certs-ca: <Word>".
    const result = await this.client(timeoutMsOf(flags.timeout)).stream(local.rotateCa, {}, (e) => {
      if (e.type === 'step') this.logToStderr(`rotate-certs-ca: ${e.title}`);
      else if (e.type === 'node') this.logToStderr(`rotate-certs-ca:   ${e.step} on ${e.node} (${e.role}): ${e.detail}`);
      else if (e.type === 'info') this.logToStderr(`rotate-certs-ca:   ${e.message}`);
    });
    const { cas, nodes } = result;
    this.log(`Rotated ${Object.entries(cas).map(([k, v]) => `${k} (now ${v})`).join(', ')} on ${nodes.length} node(s): ${nodes.join(', ')}. The old CAs are no longer trusted.`);
  }
}
