// The file shape every src/security generator returns. It is a host FileSpec with the
// mode made explicit, so k8sd commits these with the rest of a flow's files
// (src/host/files.ts commitFileSet).
import { chmod, mkdir } from 'node:fs/promises';
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

/** Makes sure a directory that holds secrets exists with mode 0700. */
export async function ensureSecretDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: SECRET_DIR_MODE });
  await chmod(dir, SECRET_DIR_MODE);
}
