// Test helper: finds the FIPS provider built by tests/fips/build-provider.sh and the
// pinned Node binary. Tests that need the provider skip with SKIP_REASON when it is absent.
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The pinned Node 24 (its bundled OpenSSL 3.5 loads the provider); vitest itself may run on another Node. */
export const PINNED_NODE = path.join(repoRoot, 'node_modules', 'node', 'bin', 'node');

export interface BuiltProvider {
  dir: string;
  version: string;
  /** openssl.cnf written by build-provider.sh (fips + base, default_properties = fips=yes). */
  configPath: string;
  env: { OPENSSL_CONF: string; OPENSSL_MODULES: string };
}

function cacheRoot(): string {
  return path.join(process.env.K8S_COMPONENT_CACHE || path.join(os.homedir(), '.cache', 'k8s-ts', 'components'), 'openssl-fips');
}

/** The newest complete build, or undefined. */
export function builtProvider(): BuiltProvider | undefined {
  const root = cacheRoot();
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, '.complete')) && existsSync(path.join(root, v, 'fips.so')))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.at(-1);
  if (!version) return undefined;
  const dir = path.join(root, version);
  const configPath = path.join(dir, 'openssl.cnf');
  return { dir, version, configPath, env: { OPENSSL_CONF: configPath, OPENSSL_MODULES: dir } };
}

export const SKIP_REASON = `no FIPS provider built under ${cacheRoot()}: run tests/fips/build-provider.sh (about 2 minutes) to enable these tests`;
