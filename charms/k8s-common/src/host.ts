// Facts about the machine the unit runs on, behind an interface so tests can declare them.
import { access, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';

export interface Host {
  /** The Kubernetes node name: the lower-cased hostname. */
  nodeName(): string;
  /** /proc/sys/crypto/fips_enabled reads 1. */
  fipsEnabled(): Promise<boolean>;
  /** k8sd's control socket exists, i.e. the daemon is up and the k8s CLI can talk to it. */
  k8sdReady(): Promise<boolean>;
  sleep(ms: number): Promise<void>;
}

export interface HostPaths {
  readonly fipsEnabledFile: string;
  readonly k8sdSocket: string;
}

/** K8S_CHARM_K8SD_SOCKET and K8S_CHARM_FIPS_FILE override the paths (tests, dev snaps). */
export function hostPathsFromEnv(env: NodeJS.ProcessEnv): HostPaths {
  return {
    fipsEnabledFile: env.K8S_CHARM_FIPS_FILE || '/proc/sys/crypto/fips_enabled',
    k8sdSocket: env.K8S_CHARM_K8SD_SOCKET || '/var/snap/k8s/common/var/lib/k8sd/state/control.socket',
  };
}

export class MachineHost implements Host {
  constructor(private readonly paths: HostPaths) {}

  nodeName(): string {
    return hostname().toLowerCase();
  }

  async fipsEnabled(): Promise<boolean> {
    try {
      return (await readFile(this.paths.fipsEnabledFile, 'utf8')).trim() === '1';
    } catch {
      return false;
    }
  }

  async k8sdReady(): Promise<boolean> {
    try {
      await access(this.paths.k8sdSocket);
      return true;
    } catch {
      return false;
    }
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}
