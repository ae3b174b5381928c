import { existsSync } from 'node:fs';
import path from 'node:path';
import { Args, Flags } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, timeoutMsOf } from '../base.js';
import { installAdvice } from '../../install.js';
import { local } from '../../api/index.js';

function size(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export default class Snapshot extends K8sCommand {
  static override summary = 'Encrypted etcd snapshots of the cluster: save, list, restore';
  static override description =
    "save takes one and prints its file on the last line; list shows this node's; restore puts one back on this control-plane node, and the other control-plane nodes then re-join.";
  static override examples = [
    '$ sudo <%= config.bin %> snapshot save',
    '$ sudo <%= config.bin %> snapshot save --name before-upgrade',
    '$ sudo <%= config.bin %> snapshot list',
    { description: 'Restore a file that "k8s snapshot list" shows:', command: '$ sudo <%= config.bin %> snapshot restore before-upgrade-cp1-20260101T000000Z.k8s-snapshot' },
    { description: 'Every 6 hours, keeping the last 10:', command: '$ sudo <%= config.bin %> set etcd-snapshot.schedule="0 */6 * * *" etcd-snapshot.retention=10' },
  ];
  static override args = {
    action: Args.string({ description: 'save | list | restore', options: ['save', 'list', 'restore'], required: true }),
    file: Args.string({ description: 'restore: the snapshot file (a path, or a file name from "k8s snapshot list")' }),
  };
  static override flags = {
    name: Flags.string({ description: 'save: the snapshot\'s name (lower-case letters, digits, "-" and "."); default on-demand' }),
    'output-format': outputFormatFlag,
    timeout: Flags.string({ description: 'how long to wait, e.g. 90s or 5m (default: 15m to save, 30m to restore)' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Snapshot);
    const format = flags['output-format'] as OutputFormat;
    if (args.action === 'save') {
      if (args.file) this.error(`"k8s snapshot save" takes no file argument (got "${args.file}"); name it with --name`, { exit: 1 });
      const res = await this.client(flags.timeout ? timeoutMsOf(flags.timeout) : 900_000).call(local.saveSnapshot, flags.name === undefined ? {} : { name: flags.name });
      await this.render(res, format, () => `saved etcd revision ${res.revision} (${res.keys} keys), ${size(res.bytes)}, encrypted\n${res.file}`);
      return;
    }
    if (args.action === 'list') {
      const res = await this.client().call(local.listSnapshots);
      await this.render(res, format, () => {
        if (!res.snapshots.length) return `no snapshots in ${res.directory}`;
        const rows = res.snapshots.map((s) => [s.createdAt.replace(/\.\d+Z$/, 'Z'), s.scheduled ? 'scheduled' : 'on-demand', size(s.bytes).padStart(10), s.file].join('  '));
        return [`${'CREATED'.padEnd(20)}  ${'KIND'.padEnd(9)}  ${'SIZE'.padStart(10)}  FILE`, ...rows].join('\n');
      });
      return;
    }
    if (!args.file) this.error('"k8s snapshot restore" needs the snapshot file; see "k8s snapshot list"', { exit: 1 });
    // A file in the current directory is sent as an absolute path; a bare name means one from "k8s snapshot list".
    const file = existsSync(args.file) ? path.resolve(args.file) : args.file;
    const result = await this.client(flags.timeout ? timeoutMsOf(flags.timeout) : 1_800_000).stream(local.restoreSnapshot, { file }, (e) => {
      if (format !== 'plain') return;
      if (e.type === 'step') this.logToStderr(`- ${e.title}`);
      else if (e.type === 'info') this.logToStderr(e.message);
      else if (e.type === 'rollback') this.logToStderr(`  rolled back ${e.step}${e.error ? ` (rollback error: ${e.error})` : ''}`);
    });
    await this.render(result, format, () =>
      [
        `restored etcd revision ${result.revision} in ${result.seconds.toFixed(1)} s; this node is now the only control-plane member`,
        ...(result.previousDataDir ? [`the previous etcd data directory was kept at ${result.previousDataDir} (remove it when satisfied)`] : []),
        ...(result.droppedNodes.length
          ? [`control-plane nodes removed from the cluster: ${result.droppedNodes.join(', ')}; on each, run ${installAdvice(this.layout).resetNode}, then join it again with a new token`]
          : []),
      ].join('\n'),
    );
  }
}
