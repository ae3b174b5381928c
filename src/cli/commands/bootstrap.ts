import { Flags, ux } from '@oclif/core';
import { K8sCommand, readFlagFile, timeoutFlagWith, timeoutMsOf } from '../base.js';

export default class Bootstrap extends K8sCommand {
  static override summary = 'Bootstrap a new Kubernetes cluster on this node';
  static override examples = [
    '$ sudo <%= config.bin %> bootstrap',
    '$ sudo <%= config.bin %> bootstrap --file bootstrap.yaml --name cp1 --address 10.0.0.5',
    '$ cat bootstrap.yaml | sudo <%= config.bin %> bootstrap --file -',
  ];
  static override flags = {
    file: Flags.string({ description: 'bootstrap configuration YAML file, or - for stdin' }),
    name: Flags.string({ description: 'node name (default: the hostname)' }),
    address: Flags.string({ description: 'node address (IP or CIDR) that other nodes and services use' }),
    timeout: timeoutFlagWith('120s'),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Bootstrap);
    const timeoutMs = timeoutMsOf(flags.timeout);
    const text = flags.file === undefined ? '' : readFlagFile('file', flags.file);
    // Validate locally first, so a bad file fails fast with the key named.
    const { parseBootstrapYaml } = await import('../../config/bootstrap.js');
    for (const w of parseBootstrapYaml(text).weakened) {
      this.logToStderr(`Warning: accept-insecure-node-args: ${w.service} --${w.flag}${w.value === null ? ' removed' : `=${w.value}`} weakens a security default (k8s status will show it)`);
    }
    const client = this.client(timeoutMs + 30_000);
    const node = await client.node();
    if (node.clustered) this.error(`this node is already part of a cluster (node "${node.name}", ${node.role}); nothing was changed`, { exit: 1 });
    const tty = Boolean(process.stderr.isTTY);
    let current = '';
    const result = await client
      .bootstrap({ config: text, ...(flags.name ? { name: flags.name } : {}), ...(flags.address ? { address: flags.address } : {}), timeoutSeconds: timeoutMs / 1000 }, (e) => {
        if (e.type === 'step') {
          if (tty) {
            if (current) ux.action.stop('done');
            ux.action.start(e.title);
          } else {
            this.logToStderr(`bootstrap: ${e.title}`);
          }
          current = e.title;
        } else if (e.type === 'rollback') {
          if (!tty) this.logToStderr(`bootstrap: rolled back ${e.step}${e.error ? ` (${e.error})` : ''}`);
        }
      })
      .catch((err: Error) => {
        if (tty && current) ux.action.stop('failed');
        throw err;
      });
    if (tty && current) ux.action.stop('done');
    this.log(`Bootstrapped a new Kubernetes cluster with node address "${String(result.address)}" in ${Number(result.seconds).toFixed(1)} s.`);
    this.log('The node will be Ready as soon as its services report ready. Check with "k8s status --wait-ready".');
  }
}
