// Shared flags and rendering for every `k8s` command.
import { Command, Flags } from '@oclif/core';
import { K8sdClient, K8sdError } from '../client/index.js';
import { Layout } from '../layout.js';

export type OutputFormat = 'plain' | 'json' | 'yaml';

export const outputFormatFlag = Flags.string({
  description: 'output format',
  options: ['plain', 'json', 'yaml'],
  default: 'plain',
});

export function timeoutFlagWith(defaultValue: string) {
  return Flags.string({ description: 'how long to wait, e.g. 90s or 5m (minimum 3s)', default: defaultValue });
}
export const timeoutFlag = timeoutFlagWith('90s');

/** Parses 90s / 5m / 2h / 1d / 4mo / 1y (and Go-style combinations such as 1h30m). */
export function parseDuration(text: string, flag = 'duration'): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, mo: 30 * 86_400_000, y: 365 * 86_400_000 };
  const re = /(\d+(?:\.\d+)?)(ms|mo|s|m|h|d|y)/g;
  let total = 0;
  let consumed = '';
  for (const m of text.matchAll(re)) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed += m[0];
  }
  if (!consumed || consumed !== text.trim()) throw new Error(`--${flag}: "${text}" is not a duration; use forms like 90s, 5m, 24h, 30d, 4mo or 1y`);
  return total;
}

export abstract class K8sCommand extends Command {
  protected layout = new Layout();
  protected client(timeoutMs?: number): K8sdClient {
    return new K8sdClient(this.layout, timeoutMs);
  }

  protected async render(data: unknown, format: OutputFormat, plain: () => string): Promise<void> {
    if (format === 'json') this.log(JSON.stringify(data, null, 2));
    else if (format === 'yaml') this.log((await import('js-yaml')).default.dump(data).trimEnd());
    else this.log(plain());
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof K8sdError || err.name === 'ConfigError') {
      this.logToStderr(`Error: ${err.message}`);
      this.exit(1);
    }
    return super.catch(err);
  }
}
