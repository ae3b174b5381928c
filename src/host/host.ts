// The host and the snap environment, behind one interface: paths and host facts. With the node's
// ServiceManager it makes a Host (services/host.ts), through which flows and controllers reach them.
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import net from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { defaultNodeAddress, localAddresses } from '../config/net.js';
import { Layout } from '../layout.js';

export interface HostFacts {
  readonly layout: Layout;
  hostname(): string;
  defaultAddress(): string;
  localAddresses(): string[];
  /** 1 on hybrid/legacy cgroup v1 hosts, 2 on unified hosts. */
  cgroupVersion(): 1 | 2;
  /** True when a TCP listener could bind address:port right now. */
  portFree(address: string, port: number): Promise<boolean>;
  /** True when something in this network namespace listens on TCP `port` (any address); binds nothing. */
  listening(port: number): Promise<boolean>;
}

const CGROUP2_MAGIC = 0x63677270;

export class LocalHost implements HostFacts {
  constructor(readonly layout: Layout) {}

  hostname(): string {
    const override = process.env.K8S_NODE_NAME;
    return (override || hostname()).toLowerCase();
  }

  defaultAddress(): string {
    return defaultNodeAddress();
  }

  localAddresses(): string[] {
    return localAddresses();
  }

  cgroupVersion(): 1 | 2 {
    return hostCgroupVersion();
  }

  portFree(address: string, port: number): Promise<boolean> {
    return new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(true)));
    });
  }

  async listening(port: number): Promise<boolean> {
    // A trial bind (portFree) could win the race against the service and make it fail: read the
    // kernel's socket tables instead, which list this network namespace's sockets.
    for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
      let text: string;
      try {
        text = readFileSync(table, 'utf8');
      } catch {
        continue;
      }
      if (listensOn(text, port)) return true;
    }
    return false;
  }
}

/** Whether a /proc/net/tcp{,6} table lists a socket in LISTEN state (0A) on `port`. */
export function listensOn(table: string, port: number): boolean {
  const want = port.toString(16).toUpperCase().padStart(4, '0');
  return table
    .split('\n')
    .slice(1)
    .some((line) => {
      const f = line.trim().split(/\s+/);
      return f.length > 3 && f[1]!.endsWith(`:${want}`) && f[3] === '0A';
    });
}

/** 1 on hybrid/legacy cgroup v1 hosts, 2 on unified hosts. */
export function hostCgroupVersion(): 1 | 2 {
  try {
    return statfsSync('/sys/fs/cgroup').type === CGROUP2_MAGIC ? 2 : 1;
  } catch {
    return existsSync('/sys/fs/cgroup/cgroup.controllers') ? 2 : 1;
  }
}

export function readProcFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether an executable of this name is on PATH. */
export function onPath(binary: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((dir) => dir && existsSync(path.join(dir, binary)));
}
