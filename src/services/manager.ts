// ServiceManager: one interface, two backends.
//  - SnapServiceManager: snapd runs the services (snapctl start/stop/restart k8s.<svc>).
//  - Supervisor: k8sd spawns each service itself, restarts it with back-off after a crash,
//    keeps one log per service and stops it cleanly. Used wherever systemd/snapd is absent.
import { ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { Layout } from '../layout.js';
import { Logger } from '../log.js';
import { writeFileAtomic } from '../host/files.js';
import { argsToArgv, readArgsFile, readEnvFile } from './args.js';
import { BINARIES, ServiceId } from './specs.js';
import { verifyComponentChecksum, verifyGoFips } from './binaries.js';

export type ServiceState = 'running' | 'starting' | 'stopped' | 'backoff' | 'failed';

export interface ServiceStatus {
  name: string;
  state: ServiceState;
  pid?: number;
  restarts: number;
  since?: string;
  lastExit?: string;
}

export interface ServiceManager {
  readonly backend: 'snap' | 'supervisor';
  start(name: ServiceId): Promise<void>;
  stop(name: ServiceId): Promise<void>;
  restart(name: ServiceId): Promise<void>;
  status(name: ServiceId): Promise<ServiceStatus>;
  /** Stops every service this manager started. */
  stopAll(): Promise<void>;
  /** Stops services a previous k8sd left running (the supervisor's children outlive a crash; snapd's are its own). */
  reapStale(): Promise<void>;
}

export class ServiceError extends Error {
  constructor(readonly service: string, message: string) {
    super(`${service}: ${message}`);
    this.name = 'ServiceError';
  }
}

/** Runs a service binary with the arguments of its args file and the variables of its env files. */
export function serviceCommand(layout: Layout, name: ServiceId): { file: string; argv: string[]; env: Record<string, string> } {
  const bin = BINARIES[name];
  const file = layout.componentBinary(bin.component, bin.binary);
  // Never run a service without its arguments: it would start with insecure built-in defaults.
  if (!existsSync(layout.args(name))) throw new ServiceError(name, `its arguments file ${layout.args(name)} is missing; refusing to start it without them`);
  const argv = argsToArgv(readArgsFile(layout.args(name)));
  const files = { ...readEnvFile(layout.args('snap-env')), ...readEnvFile(layout.args(`${name}-env`)) };
  // FIPS mode or not is k8sd's decision, applied to every Go component (and what they exec: the
  // containerd shim, runc, the CNI plugins inherit it).
  const env = { ...files, GODEBUG: layout.goDebug(files.GODEBUG ?? process.env.GODEBUG ?? '') };
  return { file, argv, env };
}

interface Supervised {
  name: ServiceId;
  child?: ChildProcess;
  desired: 'running' | 'stopped';
  state: ServiceState;
  restarts: number;
  since?: Date;
  lastExit?: string;
  backoffMs: number;
  timer?: NodeJS.Timeout;
  exited?: Promise<void>;
}

/** Per-service stop grace (as the snap's stop-timeout): a restart must not wait on a slow drain. */
const STOP_TIMEOUT_MS: Partial<Record<ServiceId, number>> = { 'kube-apiserver': 5000 };

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A service that ran this long is considered healthy again: back-off resets. */
const STABLE_MS = 60_000;

export class Supervisor implements ServiceManager {
  readonly backend = 'supervisor' as const;
  private readonly services = new Map<ServiceId, Supervised>();

  constructor(
    private readonly layout: Layout,
    private readonly log: Logger,
    private readonly stopTimeoutMs = 15_000,
  ) {}

  private pidFile(name: string): string {
    return path.join(this.layout.runDir, `${name}.pid`);
  }

  /**
   * Kills services left behind by a previous k8sd that died without stopping them: those named by
   * pid files, and any service process whose arguments point into this node's directories (a
   * pid file can be missing, e.g. after a crash between spawn and write).
   */
  async reapStale(): Promise<void> {
    const found = new Map<number, string>();
    if (existsSync(this.layout.runDir)) {
      for (const f of readdirSync(this.layout.runDir).filter((n) => n.endsWith('.pid'))) {
        const file = path.join(this.layout.runDir, f);
        const name = f.slice(0, -4) as ServiceId;
        let pid = 0;
        try {
          pid = Number(readFileSync(file, 'utf8').trim());
        } catch {
          continue; // gone meanwhile
        }
        if (pid > 0 && processMatches(pid, BINARIES[name]?.binary)) found.set(pid, name);
        rmSync(file, { force: true });
      }
    }
    for (const [pid, name] of findServiceProcesses(this.layout)) if (!found.has(pid)) found.set(pid, name);
    for (const [pid, name] of found) {
      this.log.warn('stopping a service left running by a previous k8sd', { svc: name, pid });
      await killAndWait(pid, this.stopTimeoutMs);
    }
  }

  async start(name: ServiceId): Promise<void> {
    let s = this.services.get(name);
    if (!s) {
      s = { name, desired: 'running', state: 'stopped', restarts: 0, backoffMs: MIN_BACKOFF_MS };
      this.services.set(name, s);
    }
    if (s.desired === 'stopped') {
      // A start after an explicit stop is a new run: crash counts of the old one (which
      // crashWatch reads) must not fail it, e.g. a bootstrap retried after a rolled-back one.
      s.restarts = 0;
      s.backoffMs = MIN_BACKOFF_MS;
      delete s.lastExit;
    }
    s.desired = 'running';
    if (s.child && s.state !== 'stopped') return;
    if (s.timer) clearTimeout(s.timer);
    this.spawn(s);
  }

  private spawn(s: Supervised): void {
    const { file, argv, env } = serviceCommand(this.layout, s.name);
    if (!existsSync(file)) {
      s.state = 'failed';
      s.lastExit = `binary ${file} not found; ${this.layout.componentBuildHint(BINARIES[s.name].component)}`;
      throw new ServiceError(s.name, s.lastExit);
    }
    try {
      verifyComponentChecksum(this.layout, BINARIES[s.name].component, file);
      verifyGoFips(this.layout, BINARIES[s.name].component, file);
    } catch (err) {
      s.state = 'failed';
      s.lastExit = (err as Error).message;
      throw new ServiceError(s.name, s.lastExit);
    }
    mkdirSync(this.layout.logDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.layout.runDir, { recursive: true });
    const logFd = openSync(this.layout.log(s.name), 'a', 0o600);
    const child = spawn(file, argv, {
      env: { ...process.env, ...env },
      stdio: ['ignore', logFd, logFd],
      detached: true, // own process group: a terminal ^C to k8sd does not hit the services first
    });
    closeSync(logFd);
    s.child = child;
    s.state = 'starting';
    s.since = new Date();
    if (child.pid) writeFileAtomic(this.pidFile(s.name), `${child.pid}\n`, 0o644);
    this.log.info('service started', { svc: s.name, pid: child.pid });
    const startedAt = Date.now();
    s.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        s.child = undefined;
        s.lastExit = signal ? `killed by ${signal}` : `exited with code ${code}`;
        rmSync(this.pidFile(s.name), { force: true });
        if (s.desired === 'running') {
          if (Date.now() - startedAt > STABLE_MS) s.backoffMs = MIN_BACKOFF_MS;
          s.restarts++;
          s.state = 'backoff';
          this.log.warn('service exited; restarting after back-off', { svc: s.name, exit: s.lastExit, backoffMs: s.backoffMs });
          s.timer = setTimeout(() => {
            s.timer = undefined;
            if (s.desired !== 'running') return;
            try {
              this.spawn(s);
            } catch (err) {
              this.log.error('service restart failed', { svc: s.name, error: (err as Error).message });
            }
          }, s.backoffMs);
          s.backoffMs = Math.min(s.backoffMs * 2, MAX_BACKOFF_MS);
        } else {
          s.state = 'stopped';
          this.log.info('service stopped', { svc: s.name, exit: s.lastExit });
        }
        resolve();
      });
    });
    child.once('spawn', () => {
      if (s.child === child) s.state = 'running';
    });
  }

  async stop(name: ServiceId): Promise<void> {
    const s = this.services.get(name);
    if (!s) return;
    s.desired = 'stopped';
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    const child = s.child;
    if (!child?.pid) {
      s.state = 'stopped';
      return;
    }
    child.kill('SIGTERM');
    const killer = setTimeout(() => {
      this.log.warn('service did not stop in time; killing it', { svc: name });
      child.kill('SIGKILL');
    }, Math.min(this.stopTimeoutMs, STOP_TIMEOUT_MS[name] ?? this.stopTimeoutMs));
    await s.exited;
    clearTimeout(killer);
  }

  async restart(name: ServiceId): Promise<void> {
    await this.stop(name);
    const s = this.services.get(name);
    if (s) s.backoffMs = MIN_BACKOFF_MS;
    await this.start(name);
  }

  async status(name: ServiceId): Promise<ServiceStatus> {
    const s = this.services.get(name);
    if (!s) return { name, state: 'stopped', restarts: 0 };
    const out: ServiceStatus = { name, state: s.state, restarts: s.restarts };
    if (s.child?.pid) out.pid = s.child.pid;
    if (s.since) out.since = s.since.toISOString();
    if (s.lastExit) out.lastExit = s.lastExit;
    return out;
  }

  names(): ServiceId[] {
    return [...this.services.keys()];
  }

  async stopAll(): Promise<void> {
    // Reverse start order: the apiserver goes before etcd.
    for (const name of [...this.services.keys()].reverse()) await this.stop(name);
  }
}

/**
 * Live service processes of this node: a service binary whose arguments name a path under this
 * node's snap-common or Kubernetes directory (so nodes with other K8S_ROOTs are never touched).
 */
export function findServiceProcesses(layout: Layout): Array<[number, string]> {
  const byBinary = new Map(Object.entries(BINARIES).map(([svc, b]) => [b.binary, svc]));
  const prefixes = [`${layout.snapCommon}/`, `${layout.kubernetesDir}/`];
  const out: Array<[number, string]> = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    const svc = byBinary.get(path.basename(argv[0] ?? ''));
    if (!svc) continue;
    const values = argv.slice(1).map((a) => (a.startsWith('--') && a.includes('=') ? a.slice(a.indexOf('=') + 1) : a));
    if (values.some((v) => prefixes.some((p) => v.startsWith(p))) && processMatches(pid, undefined)) out.push([pid, svc]);
  }
  return out;
}

/**
 * True while a process exists and has not finished exiting. A zombie counts as gone (PID 1 may
 * reap late) only once all its threads are gone: a killed multi-threaded process shows Z for its
 * main thread while the others still tear down, holding its sockets and ports until they are done.
 */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (!/\) [ZX] /.test(stat)) return true;
    return readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

function processMatches(pid: number, binary: string | undefined): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return processRunning(pid) && (!binary || path.basename(cmd) === binary);
  } catch {
    return false;
  }
}

async function killAndWait(pid: number, timeoutMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && processMatches(pid, undefined)) await new Promise((r) => setTimeout(r, 100));
  if (processMatches(pid, undefined)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** snapd runs the services; k8sd only asks it to start, stop and restart them. */
export class SnapServiceManager implements ServiceManager {
  readonly backend = 'snap' as const;
  private readonly started = new Set<ServiceId>();

  constructor(private readonly run: (argv: string[]) => Promise<{ stdout: string }> = async (argv) => execa('snapctl', argv)) {}

  async start(name: ServiceId): Promise<void> {
    await this.run(['start', '--enable', `k8s.${name}`]);
    this.started.add(name);
  }
  async stop(name: ServiceId): Promise<void> {
    await this.run(['stop', '--disable', `k8s.${name}`]);
    this.started.delete(name);
  }
  async restart(name: ServiceId): Promise<void> {
    await this.run(['restart', `k8s.${name}`]);
  }
  async status(name: ServiceId): Promise<ServiceStatus> {
    // `snapctl services k8s.<svc>` prints a header then: Service Startup Current Notes
    const { stdout } = await this.run(['services', `k8s.${name}`]);
    const line = stdout.split('\n').find((l) => l.startsWith(`k8s.${name}`));
    const current = line?.trim().split(/\s+/)[2];
    return { name, state: current === 'active' ? 'running' : 'stopped', restarts: 0 };
  }
  async stopAll(): Promise<void> {
    for (const name of [...this.started].reverse()) await this.stop(name);
  }
  async reapStale(): Promise<void> {
    // snapd owns the services' processes: none is stale to k8sd.
  }
}
