import { readFileSync, statSync } from 'node:fs';
import { Args, Flags, ux } from '@oclif/core';
import { K8sCommand, outputFormatFlag, OutputFormat, readFlagFile, timeoutFlagWith, timeoutMsOf } from '../base.js';

export default class JoinCluster extends K8sCommand {
  static override summary = 'Join this node to a cluster with a token from "k8s get-join-token"';
  static override description =
    "The token says whether the node joins the control plane or as a worker. k8sd checks the token (format, checksum, expiry), the name, the address and the join file before it changes anything, and verifies the control-plane node's certificate against the token before it sends the secret.";
  static override examples = [
    '$ sudo <%= config.bin %> join-cluster --token-file ./token --name cp2 --address 10.0.0.6',
    '<%= config.bin %> get-join-token w1 --worker | ssh w1 sudo <%= config.bin %> join-cluster --token-file -',
    '$ sudo <%= config.bin %> join-cluster --token-file ./token --file join.yaml',
    { description: 'A token argument works, but warns: other users can read it:', command: '$ sudo <%= config.bin %> join-cluster k8sj1_eyJ2Ijo...' },
  ];
  static override args = {
    token: Args.string({
      description: 'the join token; "-" reads it from stdin. Prefer --token-file: a token on the command line is readable by every local user while the join runs',
      // oclif would otherwise take piped stdin (the join file of --file -) as the token.
      ignoreStdin: true,
    }),
  };
  static override flags = {
    name: Flags.string({ description: 'node name (default: the name the token is for, else the hostname)' }),
    address: Flags.string({ description: 'node address (IP or CIDR) that other nodes and services use' }),
    file: Flags.string({ description: 'join configuration YAML (extra-sans, extra-node-*-args, ...), or - for stdin' }),
    'token-file': Flags.string({ description: 'read the join token from this file (keep it mode 0600), or - for stdin' }),
    timeout: timeoutFlagWith('5m'),
    'output-format': outputFormatFlag,
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(JoinCluster);
    const timeoutMs = timeoutMsOf(flags.timeout);
    const token = this.readToken(args.token, flags['token-file'], flags.file);
    if (!token.startsWith('k8sj1_')) this.error('invalid join token: it does not start with "k8sj1_"; copy the whole output of "k8s get-join-token"', { exit: 1 });
    const config = flags.file === undefined ? '' : readFlagFile('file', flags.file);
    const client = this.client(timeoutMs + 30_000);
    const node = await client.node();
    if (node.clustered) this.error(`this node is already part of a cluster (node "${node.name}", ${node.role}); nothing was changed`, { exit: 1 });
    const { MembershipClient } = await import('../../client/membership.js');
    const format = flags['output-format'] as OutputFormat;
    const tty = Boolean(process.stderr.isTTY) && format === 'plain';
    let current = '';
    const result = await new MembershipClient(client)
      .join(
        { token, config, timeoutSeconds: timeoutMs / 1000, ...(flags.name ? { name: flags.name } : {}), ...(flags.address ? { address: flags.address } : {}) },
        (e) => {
          if (e.type === 'step') {
            if (tty) {
              if (current) ux.action.stop('done');
              ux.action.start(e.title);
            } else {
              this.logToStderr(`join: ${e.title}`);
            }
            current = e.title;
          } else if (e.type === 'info') {
            this.logToStderr(`join: ${e.message}`);
          } else if (e.type === 'rollback') {
            if (!tty) this.logToStderr(`join: rolled back ${e.step}${e.error ? ` (${e.error})` : ''}`);
          }
        },
      )
      .catch((err: Error) => {
        if (tty && current) ux.action.stop('failed');
        throw err;
      });
    if (tty && current) ux.action.stop('done');
    await this.render(result, format, () =>
      [
        `Joined the cluster as ${String(result.role)} node "${String(result.name)}" (${String(result.address)}) in ${Number(result.seconds).toFixed(1)} s.`,
        result.role === 'worker' ? 'The node is Ready once its pod network is configured; check with "k8s kubectl get nodes" on a control-plane node.' : 'Check the cluster with "k8s status".',
      ].join('\n'),
    );
  }

  /**
   * The token from --token-file, stdin ("-") or, with a warning, the command line. A token in argv
   * is readable in /proc/<pid>/cmdline by every local user for the whole join and stays in shell
   * history, so the file and stdin are the ways we document.
   */
  private readToken(arg: string | undefined, tokenFile: string | undefined, configFile: string | undefined): string {
    if (arg !== undefined && tokenFile !== undefined) this.error('give the join token either as an argument or with --token-file, not both', { exit: 1 });
    const source = tokenFile ?? arg;
    if (source === undefined) this.error('a join token is needed: --token-file <file>, --token-file - (stdin), or the token as an argument', { exit: 1 });
    if (source === '-') {
      if (configFile === '-') this.error('stdin cannot carry both the token (-) and the join file (--file -); put one of them in a file', { exit: 1 });
      return firstLine(readFileSync(0, 'utf8'));
    }
    if (tokenFile !== undefined) {
      const text = readFlagFile('token-file', tokenFile);
      if ((statSync(tokenFile).mode & 0o077) !== 0) this.logToStderr(`Warning: ${tokenFile} is readable by other users; keep token files mode 0600`);
      return firstLine(text);
    }
    this.logToStderr(
      'Warning: the join token was given on the command line, where other local users can read it (/proc/<pid>/cmdline) and your shell history keeps it; use --token-file <file> or --token-file - (stdin) instead',
    );
    return source.trim();
  }
}

function firstLine(text: string): string {
  return (text.split('\n').find((l) => l.trim() !== '') ?? '').trim();
}
