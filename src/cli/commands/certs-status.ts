import { Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, parseDuration } from '../base.js';
import { local, type CertEntry } from '../../api/index.js';

export default class CertsStatus extends K8sCommand {
  static override summary = 'List the certificates and kubeconfigs of this node, their expiry and issuing CA';
  static override examples = [
    '<%= config.bin %> certs-status',
    { description: 'Exit 1 if anything expires within 30 days:', command: '<%= config.bin %> certs-status --check-within 30d' },
  ];
  static override flags = {
    'output-format': outputFormatFlag,
    'check-within': Flags.string({ description: 'exit non-zero when any certificate expires within this window (e.g. 30d)' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(CertsStatus);
    const windowMs = flags['check-within'] ? parseDuration(flags['check-within'], 'check-within') : undefined;
    const res = await this.client().call(local.certsStatus);
    const expiring = windowMs === undefined ? [] : res.certificates.filter((c) => c.residualSeconds * 1000 < windowMs);
    await this.render(res, flags['output-format'] as OutputFormat, () => table(res.certificates));
    if (expiring.length) {
      this.logToStderr(`${expiring.length} certificate(s) expire within ${flags['check-within']}: ${expiring.map((c) => c.name).join(', ')}`);
      this.exit(1);
    }
  }
}

export function residual(seconds: number): string {
  if (seconds <= 0) return 'expired';
  const d = Math.floor(seconds / 86400);
  if (d >= 365) return `${Math.floor(d / 365)}y`;
  if (d >= 1) return `${d}d`;
  const h = Math.floor(seconds / 3600);
  if (h >= 1) return `${h}h`;
  return `${Math.max(1, Math.floor(seconds / 60))}m`;
}

function table(certs: CertEntry[]): string {
  const row = (c: string[]): string => [c[0]!.padEnd(27), c[1]!.padEnd(23), c[2]!.padEnd(15), c[3]!.padEnd(42), c[4]!].join(' ');
  const leafs = certs.filter((c) => c.kind !== 'ca');
  const cas = certs.filter((c) => c.kind === 'ca');
  const fmt = (c: CertEntry): string[] => [c.name, c.expires.replace(/\.\d+Z$/, 'Z'), residual(c.residualSeconds), c.ca, c.externallyManaged ? 'yes' : 'no'];
  return [
    row(['CERTIFICATE', 'EXPIRES', 'RESIDUAL TIME', 'CERTIFICATE AUTHORITY', 'EXTERNALLY MANAGED']),
    ...leafs.map((c) => row(fmt(c))),
    '',
    row(['CERTIFICATE AUTHORITY', 'EXPIRES', 'RESIDUAL TIME', 'ISSUER', 'EXTERNALLY MANAGED']),
    ...cas.map((c) => row(fmt(c))),
  ].join('\n');
}
