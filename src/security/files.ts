// The file shape every src/security generator returns, plus the atomic writer
// k8sd can use for them (and that the KEK ring uses itself).
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import yaml from 'js-yaml';

export interface SecurityFile {
  /** Absolute host path, derived from a Layout. */
  path: string;
  content: string;
  /** Octal file mode, e.g. 0o600. */
  mode: number;
}

/** Mode of every file that holds a key or configures who can read what. */
export const SECRET_FILE_MODE = 0o600;
/** Mode of the directories that hold key files. */
export const SECRET_DIR_MODE = 0o700;

/** Stable YAML for Kubernetes config files: no anchors, no line folding, keys in insertion order. */
export function toYaml(document: object): string {
  return yaml.dump(document, { noRefs: true, lineWidth: -1, sortKeys: false });
}

let tempCounter = 0;

/**
 * Writes a file atomically: temp file in the same directory (created with the final
 * mode, so the content is never readable by others), fsync, rename, fsync the directory.
 */
export async function writeFileAtomic(file: SecurityFile, dirMode = 0o755): Promise<void> {
  const dir = path.dirname(file.path);
  await mkdir(dir, { recursive: true, mode: dirMode });
  const temp = path.join(dir, `.${path.basename(file.path)}.${process.pid}.${Date.now()}.${++tempCounter}.tmp`);
  const handle = await open(temp, 'wx', file.mode);
  try {
    await handle.writeFile(file.content, 'utf8');
    // open() honours the umask; chmod makes the mode exact.
    await handle.chmod(file.mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temp, file.path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** Writes every file atomically, in order. Parent directories that do not exist yet are created 0755. */
export async function writeSecurityFiles(files: readonly SecurityFile[]): Promise<void> {
  for (const file of files) await writeFileAtomic(file);
}

/** Makes sure a directory that holds secrets exists with mode 0700. */
export async function ensureSecretDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: SECRET_DIR_MODE });
  await chmod(dir, SECRET_DIR_MODE);
}
