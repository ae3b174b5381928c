// Shared flags and rendering for every `k8s` command.
import { Command, Flags } from '@oclif/core';
import { K8sdClient, K8sdError } from '../client/index.js';
import { tryParseDurationMs } from '../config/duration.js';
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

/** Parses 90s / 5m / 2h / 1d / 4mo / 1y (and combinations such as 1h30m); the error names the flag. */
export function parseDuration(text: string, flag = 'duration'): number {
  const ms = tryParseDurationMs(text);
  if (ms === undefined) throw new Error(`--${flag}: "${text}" is not a duration; use forms like 90s, 5m, 24h, 30d, 4mo or 1y`);
  return ms;
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
