// The real hook tools: each call spawns the Juju tool with execa, with --format=json
// wherever the tool prints something.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { HookToolError, HookToolOutputError } from './errors.js';
import {
  formatPort,
  type ConfigValue,
  type ConfigValues,
  type HookTools,
  type JsonValue,
  type LogLevel,
  type NetworkInfo,
  type Port,
  type RelationTarget,
  type SecretAddOptions,
  type SecretGetOptions,
  type SettableStatus,
  type StringMap,
} from './hooktools.js';
import { isJsonObject, isStringArray, isStringMap, stringField, tryParseJson, type JsonObject } from './json.js';

export interface ExecaHookToolsOptions {
  /** Environment for the tools; the Juju agent's PATH puts the tools first. Defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

interface RunOptions {
  readonly input?: string;
}

export class ExecaHookTools implements HookTools {
  private readonly env: NodeJS.ProcessEnv;

  constructor(options: ExecaHookToolsOptions = {}) {
    this.env = options.env ?? process.env;
  }

  async configGet(): Promise<ConfigValues> {
    const value = await this.json('config-get', []);
    if (!isJsonObject(value)) throw new HookToolOutputError('config-get', JSON.stringify(value), 'an object');
    const config: Record<string, ConfigValue> = {};
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean') config[key] = item;
    }
    return config;
  }

  async relationIds(endpoint: string): Promise<string[]> {
    const value = await this.json('relation-ids', [endpoint]);
    if (value === null) return [];
    if (!isStringArray(value)) throw new HookToolOutputError('relation-ids', JSON.stringify(value), 'a list of relation ids');
    return value;
  }

  async relationList(relationId: string): Promise<string[]> {
    const value = await this.json('relation-list', ['-r', relationId]);
    if (value === null) return [];
    if (!isStringArray(value)) throw new HookToolOutputError('relation-list', JSON.stringify(value), 'a list of unit names');
    return value;
  }

  async relationRemoteApp(relationId: string): Promise<string> {
    const value = await this.json('relation-list', ['-r', relationId, '--app']);
    if (typeof value !== 'string') throw new HookToolOutputError('relation-list', JSON.stringify(value), 'an application name');
    return value;
  }

  async relationGet(relationId: string, target: RelationTarget): Promise<StringMap> {
    const args = ['-r', relationId, ...(target.app ? ['--app'] : []), '-', target.owner];
    const value = await this.json('relation-get', args);
    if (value === null) return {};
    if (!isStringMap(value)) throw new HookToolOutputError('relation-get', JSON.stringify(value), 'a map of strings');
    return value;
  }

  async relationSet(relationId: string, data: StringMap, app: boolean): Promise<void> {
    // --file - keeps values (which may be large or start with '-') out of argv.
    const args = ['-r', relationId, ...(app ? ['--app'] : []), '--file', '-'];
    await this.run('relation-set', args, { input: JSON.stringify(data) });
  }

  async isLeader(): Promise<boolean> {
    const value = await this.json('is-leader', []);
    if (typeof value !== 'boolean') throw new HookToolOutputError('is-leader', JSON.stringify(value), 'true or false');
    return value;
  }

  async statusSet(status: SettableStatus, message: string, application: boolean): Promise<void> {
    await this.run('status-set', [`--application=${application}`, status, message]);
  }

  async applicationVersionSet(version: string): Promise<void> {
    await this.run('application-version-set', [version]);
  }

  async actionGet(): Promise<Record<string, JsonValue>> {
    const value = await this.json('action-get', []);
    if (value === null) return {};
    if (!isJsonObject(value)) throw new HookToolOutputError('action-get', JSON.stringify(value), 'an object of parameters');
    return value;
  }

  async actionSet(results: StringMap): Promise<void> {
    const pairs = Object.entries(results).map(([key, value]) => `${key}=${value}`);
    if (pairs.length > 0) await this.run('action-set', pairs);
  }

  async actionFail(message: string): Promise<void> {
    await this.run('action-fail', [message]);
  }

  async actionLog(message: string): Promise<void> {
    await this.run('action-log', [message]);
  }

  async jujuLog(level: LogLevel, message: string): Promise<void> {
    await this.run('juju-log', ['--log-level', level, '--', message]);
  }

  async openPort(port: Port): Promise<void> {
    await this.run('open-port', [formatPort(port)]);
  }

  async closePort(port: Port): Promise<void> {
    await this.run('close-port', [formatPort(port)]);
  }

  async networkGet(binding: string, relationId?: string): Promise<NetworkInfo> {
    const value = await this.json('network-get', [binding, ...(relationId ? ['-r', relationId] : [])]);
    if (!isJsonObject(value)) throw new HookToolOutputError('network-get', JSON.stringify(value), 'an object');
    return parseNetworkInfo(value);
  }

  async secretAdd(content: StringMap, options: SecretAddOptions = {}): Promise<string> {
    const flags: string[] = [];
    if (options.label) flags.push('--label', options.label);
    if (options.description) flags.push('--description', options.description);
    if (options.owner) flags.push('--owner', options.owner);
    const output = await this.withContentFiles(content, (pairs) => this.run('secret-add', [...flags, ...pairs]));
    const uri = output.trim();
    if (!uri.startsWith('secret:')) throw new HookToolOutputError('secret-add', uri, "a secret URI ('secret:…')");
    return uri;
  }

  async secretGet(id: string, options: SecretGetOptions = {}): Promise<StringMap> {
    const args = [id];
    if (options.label) args.push('--label', options.label);
    if (options.refresh) args.push('--refresh');
    if (options.peek) args.push('--peek');
    const value = await this.json('secret-get', args);
    if (!isStringMap(value)) throw new HookToolOutputError('secret-get', '<secret content withheld>', 'a map of strings');
    return value;
  }

  async secretSet(id: string, content: StringMap): Promise<void> {
    await this.withContentFiles(content, (pairs) => this.run('secret-set', [id, ...pairs]));
  }

  async secretGrant(id: string, relationId: string, unit?: string): Promise<void> {
    await this.run('secret-grant', [id, '-r', relationId, ...(unit ? ['--unit', unit] : [])]);
  }

  async secretRevoke(id: string, relationId: string, unit?: string): Promise<void> {
    await this.run('secret-revoke', [id, '-r', relationId, ...(unit ? ['--unit', unit] : [])]);
  }

  async secretRemove(id: string, revision?: number): Promise<void> {
    await this.run('secret-remove', [id, ...(revision !== undefined ? ['--revision', String(revision)] : [])]);
  }

  async stateGet(): Promise<StringMap> {
    const value = await this.json('state-get', []);
    if (value === null) return {};
    if (!isStringMap(value)) throw new HookToolOutputError('state-get', JSON.stringify(value), 'a map of strings');
    return value;
  }

  async stateSet(data: StringMap): Promise<void> {
    await this.run('state-set', ['--file', '-'], { input: JSON.stringify(data) });
  }

  async stateDelete(key: string): Promise<void> {
    await this.run('state-delete', [key]);
  }

  async resourceGet(name: string): Promise<string> {
    return (await this.run('resource-get', [name])).trim();
  }

  private async json(tool: string, args: string[]): Promise<JsonValue> {
    const output = await this.run(tool, [...args, '--format=json']);
    const trimmed = output.trim();
    if (trimmed === '') return null;
    const value = tryParseJson(trimmed);
    if (value === undefined) throw new HookToolOutputError(tool, tool === 'secret-get' ? '<withheld>' : trimmed, 'JSON');
    return value;
  }

  private async run(tool: string, args: string[], options: RunOptions = {}): Promise<string> {
    const result = await execa(tool, args, {
      env: this.env,
      extendEnv: false,
      input: options.input ?? '',
      reject: false,
      stripFinalNewline: false,
    });
    if (result.failed) {
      const stderr = typeof result.stderr === 'string' && result.stderr !== '' ? result.stderr : (result.shortMessage ?? '');
      throw new HookToolError(tool, redactContentArgs(args), result.exitCode, stderr);
    }
    return typeof result.stdout === 'string' ? result.stdout : '';
  }

  /**
   * Secret values go through 0600 files ('key#file=path'), as ops does, so that
   * they never appear in argv or in an error message.
   */
  private async withContentFiles<T>(content: StringMap, use: (pairs: string[]) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(tmpdir(), 'charm-secret-'));
    try {
      const pairs: string[] = [];
      for (const [key, value] of Object.entries(content)) {
        const file = path.join(dir, key);
        await writeFile(file, value, { mode: 0o600 });
        pairs.push(`${key}#file=${file}`);
      }
      return await use(pairs);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function redactContentArgs(args: readonly string[]): string[] {
  return args.map((arg) => (/^[a-z][a-z0-9-]*#file=/.test(arg) ? arg.replace(/=.*$/, '=<file>') : arg));
}

function parseNetworkInfo(value: JsonObject): NetworkInfo {
  const bindAddresses = Array.isArray(value['bind-addresses']) ? value['bind-addresses'] : [];
  return {
    bindAddresses: bindAddresses.filter(isJsonObject).map((bind) => {
      const macAddress = stringField(bind, 'mac-address');
      return {
        interfaceName: stringField(bind, 'interface-name') ?? '',
        ...(macAddress ? { macAddress } : {}),
        addresses: (Array.isArray(bind.addresses) ? bind.addresses : []).filter(isJsonObject).map((address) => {
          const hostname = stringField(address, 'hostname');
          return {
            value: stringField(address, 'value') ?? stringField(address, 'address') ?? '',
            cidr: stringField(address, 'cidr') ?? '',
            ...(hostname ? { hostname } : {}),
          };
        }),
      };
    }),
    ingressAddresses: isStringArray(value['ingress-addresses']) ? value['ingress-addresses'] : [],
    egressSubnets: isStringArray(value['egress-subnets']) ? value['egress-subnets'] : [],
  };
}
