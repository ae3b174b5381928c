// Custom container registries: the k8s charm's `containerd-custom-registries` option, shared with
// workers over the `containerd` relation (the k8s leader puts the validated list in its app bag
// under `custom-registries`), and written by every unit as containerd hosts.d entries:
//   <hosts.d>/<host>/hosts.toml   (0600 when it carries credentials)
//   <hosts.d>/<host>/{ca.crt,client.crt,client.key}   (0600)
// containerd reads hosts.d (its CRI registry config_path) on every pull: no restart is needed.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OptionValueError } from './options.js';
import type { StoredState } from '../../runtime/src/model.js';

export const REGISTRIES_OPTION = 'containerd-custom-registries';
export const CONTAINERD_ENDPOINT = 'containerd';
export const APP_CUSTOM_REGISTRIES = 'custom-registries';

export interface CustomRegistry {
  /** The endpoint containerd pulls from, e.g. https://registry.example.com:5000. */
  readonly url: string;
  /** The registry name images use (the hosts.d directory), e.g. docker.io; defaults to url's host. */
  readonly host: string;
  readonly username?: string;
  readonly password?: string;
  readonly identitytoken?: string;
  /** base64 PEM */
  readonly ca_file?: string;
  readonly cert_file?: string;
  readonly key_file?: string;
  readonly override_path?: boolean;
  readonly skip_verify?: boolean;
}

const STRING_FIELDS = ['url', 'host', 'username', 'password', 'identitytoken', 'ca_file', 'cert_file', 'key_file'] as const;
const BOOLEAN_FIELDS = ['override_path', 'skip_verify'] as const;
const KNOWN_FIELDS = new Set<string>([...STRING_FIELDS, ...BOOLEAN_FIELDS]);
const HOST_NAME = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$|^_default$/;
const BASE64 = /^[A-Za-z0-9+/\s]+=*\s*$/;

/** Parses and validates the option (or the relation's copy of it); every error names the entry and field. */
export function parseCustomRegistries(option: string, text: string): CustomRegistry[] {
  let value: unknown;
  try {
    value = JSON.parse(text.trim() === '' ? '[]' : text);
  } catch {
    throw new OptionValueError(option, 'is not JSON; give a list such as [{"url": "https://registry.example.com", "host": "docker.io"}]');
  }
  if (!Array.isArray(value)) throw new OptionValueError(option, 'must be a JSON list of registries');
  const hosts = new Set<string>();
  return value.map((item: unknown, index) => {
    const at = (field: string): string => `[${index}].${field}`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new OptionValueError(option, `[${index}] is not an object`);
    const entry = item as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!KNOWN_FIELDS.has(key)) throw new OptionValueError(option, `${at(key)} is not a known field (${[...KNOWN_FIELDS].join(', ')})`);
    }
    for (const key of STRING_FIELDS) {
      if (entry[key] !== undefined && typeof entry[key] !== 'string') throw new OptionValueError(option, `${at(key)} must be a string`);
    }
    for (const key of BOOLEAN_FIELDS) {
      if (entry[key] !== undefined && typeof entry[key] !== 'boolean') throw new OptionValueError(option, `${at(key)} must be true or false`);
    }
    const rawUrl = typeof entry.url === 'string' ? entry.url : '';
    if (rawUrl === '') throw new OptionValueError(option, `${at('url')} is required`);
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new OptionValueError(option, `${at('url')} '${rawUrl}' is not a URL such as https://registry.example.com`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new OptionValueError(option, `${at('url')} '${rawUrl}' must be http:// or https://`);
    const host = typeof entry.host === 'string' && entry.host !== '' ? entry.host : url.host;
    if (!HOST_NAME.test(host)) throw new OptionValueError(option, `${at('host')} '${host}' is not a registry host such as docker.io or registry.local:5000`);
    if (hosts.has(host)) throw new OptionValueError(option, `${at('host')} '${host}' is listed twice`);
    hosts.add(host);
    if ((entry.username === undefined) !== (entry.password === undefined)) {
      throw new OptionValueError(option, `${at(entry.username === undefined ? 'username' : 'password')} is required with ${entry.username === undefined ? 'password' : 'username'}`);
    }
    if (entry.identitytoken !== undefined && entry.username !== undefined) {
      throw new OptionValueError(option, `${at('identitytoken')} and username/password are exclusive; give one`);
    }
    for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
      const data = entry[key];
      if (typeof data === 'string' && (!BASE64.test(data) || !Buffer.from(data, 'base64').toString('utf8').includes('-----BEGIN'))) {
        throw new OptionValueError(option, `${at(key)} must be a base64-encoded PEM file`);
      }
    }
    if ((entry.cert_file === undefined) !== (entry.key_file === undefined)) {
      throw new OptionValueError(option, `${at(entry.cert_file === undefined ? 'cert_file' : 'key_file')} is required with ${entry.cert_file === undefined ? 'key_file' : 'cert_file'}`);
    }
    const registry: Record<string, unknown> = { url: rawUrl, host };
    for (const key of [...STRING_FIELDS, ...BOOLEAN_FIELDS]) {
      if (key !== 'url' && key !== 'host' && entry[key] !== undefined) registry[key] = entry[key];
    }
    return registry as unknown as CustomRegistry;
  });
}

function toml(value: string): string {
  return JSON.stringify(value);
}

export interface HostFiles {
  /** File name in the host's directory → content. Every file is written 0600. */
  readonly files: Readonly<Record<string, string>>;
}

/** The files of one hosts.d/<host> directory. */
export function hostFiles(registry: CustomRegistry, dir: string): HostFiles {
  const files: Record<string, string> = {};
  const decode = (data: string): string => Buffer.from(data, 'base64').toString('utf8');
  const section = `host.${toml(registry.url)}`;
  const lines = [
    '# Written by the k8s charm from containerd-custom-registries; changes here are overwritten.',
    `server = ${toml(registry.url)}`,
    '',
    `[${section}]`,
    'capabilities = ["pull", "resolve"]',
  ];
  if (registry.ca_file) {
    files['ca.crt'] = decode(registry.ca_file);
    lines.push(`ca = ${toml(path.join(dir, 'ca.crt'))}`);
  }
  if (registry.cert_file && registry.key_file) {
    files['client.crt'] = decode(registry.cert_file);
    files['client.key'] = decode(registry.key_file);
    lines.push(`client = [[${toml(path.join(dir, 'client.crt'))}, ${toml(path.join(dir, 'client.key'))}]]`);
  }
  if (registry.skip_verify !== undefined) lines.push(`skip_verify = ${registry.skip_verify}`);
  if (registry.override_path !== undefined) lines.push(`override_path = ${registry.override_path}`);
  const authorization = registry.identitytoken
    ? `Bearer ${registry.identitytoken}`
    : registry.username !== undefined
      ? `Basic ${Buffer.from(`${registry.username}:${registry.password ?? ''}`).toString('base64')}`
      : undefined;
  if (authorization) lines.push('', `[${section}.header]`, `Authorization = [${toml(authorization)}]`);
  files['hosts.toml'] = `${lines.join('\n')}\n`;
  return { files };
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(temporary, content, { mode: 0o600 });
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

const STATE_MANAGED_HOSTS = 'containerd-registry-hosts';

/**
 * Makes <hostsDir> hold exactly these registries' directories (of those this charm manages):
 * every file is written to a temporary name and renamed; hosts no longer listed are removed;
 * directories the charm did not write are left alone.
 */
export async function writeRegistryHosts(hostsDir: string, registries: readonly CustomRegistry[], state: StoredState): Promise<void> {
  const previous = parseHostList(await state.get(STATE_MANAGED_HOSTS));
  for (const registry of registries) {
    const dir = path.join(hostsDir, registry.host);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const { files } = hostFiles(registry, dir);
    for (const [name, content] of Object.entries(files)) await writeAtomically(path.join(dir, name), content);
    for (const stale of ['ca.crt', 'client.crt', 'client.key'].filter((name) => !(name in files))) await rm(path.join(dir, stale), { force: true });
  }
  const wanted = new Set(registries.map((registry) => registry.host));
  for (const host of previous.filter((item) => !wanted.has(item))) {
    const dir = path.join(hostsDir, host);
    if (path.dirname(dir) === path.resolve(hostsDir)) await rm(dir, { recursive: true, force: true });
  }
  if (registries.length > 0 || previous.length > 0) await state.set(STATE_MANAGED_HOSTS, JSON.stringify([...wanted].sort()));
}

function parseHostList(text: string | undefined): string[] {
  if (!text) return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string' && HOST_NAME.test(item)) : [];
  } catch {
    return [];
  }
}

/** K8S_CHARM_CONTAINERD_HOSTS_DIR overrides containerd's hosts.d (tests, dev snaps). */
export function containerdHostsDirFromEnv(env: NodeJS.ProcessEnv): string {
  return env.K8S_CHARM_CONTAINERD_HOSTS_DIR || '/etc/containerd/hosts.d';
}
