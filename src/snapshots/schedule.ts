// Scheduled etcd snapshots: the settings (`etcd-snapshot.schedule`, `etcd-snapshot.retention`, as
// k3s's --etcd-snapshot-schedule-cron / --etcd-snapshot-retention), their validation, and when the
// next snapshot is due. Pure: k8sd stores the settings in the cluster config and runs the timer.
//
// A schedule is a 5-field cron expression (minute hour day-of-month month day-of-week, with *, a-b,
// */n, a-b/n and lists; evaluated in UTC), a descriptor (@hourly, @daily, @weekly, @monthly,
// @yearly), "@every <duration>" (at least 10s), or "" / "off" to disable.
import { tryParseDurationMs } from '../config/duration.js';

export interface SnapshotSettings {
  schedule: string;
  retention: number;
}

/** k3s's defaults: every 12 hours, keep 5. */
export const DEFAULT_SNAPSHOT_SETTINGS: SnapshotSettings = { schedule: '0 */12 * * *', retention: 5 };
export const SNAPSHOT_KEYS = ['etcd-snapshot.schedule', 'etcd-snapshot.retention'] as const;
const MIN_EVERY_MS = 10_000;
const MAX_RETENTION = 1000;

export class SnapshotConfigError extends Error {
  constructor(readonly key: string, readonly reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'SnapshotConfigError';
  }
}

export type Schedule =
  | { kind: 'off' }
  | { kind: 'every'; ms: number }
  | { kind: 'cron'; minute: Set<number>; hour: Set<number>; dom: Set<number>; month: Set<number>; dow: Set<number>; domStar: boolean; dowStar: boolean };

const DESCRIPTORS: Record<string, string> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};
const FIELDS: Array<{ name: string; min: number; max: number }> = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day-of-week', min: 0, max: 7 },
];
const HINT = 'use a cron expression such as "0 */12 * * *" (UTC), @daily, "@every 6h", or "off"';

function parseField(key: string, text: string, f: { name: string; min: number; max: number }): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new SnapshotConfigError(key, `"${part}" is not a valid ${f.name} field; ${HINT}`);
    const step = m[4] === undefined ? 1 : Number(m[4]);
    let lo = f.min;
    let hi = f.max;
    if (m[1] !== '*') {
      lo = Number(m[2]);
      hi = m[3] === undefined ? (m[4] === undefined ? lo : f.max) : Number(m[3]);
    }
    if (step < 1 || lo < f.min || hi > f.max || lo > hi) throw new SnapshotConfigError(key, `"${part}" is out of range for ${f.name} (${f.min}-${f.max}); ${HINT}`);
    for (let v = lo; v <= hi; v += step) out.add(f.name === 'day-of-week' && v === 7 ? 0 : v);
  }
  return out;
}

/** Parses a schedule; errors name `key`. */
export function parseSchedule(text: string, key = 'etcd-snapshot.schedule'): Schedule {
  const t = text.trim();
  if (t === '' || t === 'off') return { kind: 'off' };
  if (t.startsWith('@every')) {
    const ms = tryParseDurationMs(t.slice('@every'.length).trim());
    if (ms === undefined) throw new SnapshotConfigError(key, `"${t}": "@every" needs a duration such as 30s, 15m or 6h`);
    if (ms < MIN_EVERY_MS) throw new SnapshotConfigError(key, `"${t}" is too frequent; the shortest interval is 10s`);
    return { kind: 'every', ms };
  }
  const expr = t.startsWith('@') ? DESCRIPTORS[t] : t;
  if (expr === undefined) throw new SnapshotConfigError(key, `unknown descriptor "${t}"; ${HINT}`);
  const fields = expr.split(/\s+/);
  if (fields.length !== 5) throw new SnapshotConfigError(key, `"${t}" has ${fields.length} fields, a cron expression has 5 (minute hour day-of-month month day-of-week); ${HINT}`);
  const [minute, hour, dom, month, dow] = fields.map((f, i) => parseField(key, f, FIELDS[i]!)) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  return { kind: 'cron', minute, hour, dom, month, dow, domStar: fields[2] === '*', dowStar: fields[4] === '*' };
}

/** When the next snapshot is due after `after`, or undefined when the schedule is off. */
export function nextRun(schedule: Schedule, after: Date): Date | undefined {
  if (schedule.kind === 'off') return undefined;
  if (schedule.kind === 'every') return new Date(after.getTime() + schedule.ms);
  const t = new Date(after.getTime());
  t.setUTCSeconds(0, 0);
  t.setUTCMinutes(t.getUTCMinutes() + 1);
  // Cron's rule: when both day fields are restricted, either one matching is enough.
  const dayMatches = (d: Date): boolean => {
    const dom = schedule.dom.has(d.getUTCDate());
    const dow = schedule.dow.has(d.getUTCDay());
    if (schedule.domStar || schedule.dowStar) return dom && dow;
    return dom || dow;
  };
  for (let i = 0; i < 60 * 24 * 366 * 5; i++) {
    if (schedule.month.has(t.getUTCMonth() + 1) && dayMatches(t) && schedule.hour.has(t.getUTCHours()) && schedule.minute.has(t.getUTCMinutes())) return t;
    t.setUTCMinutes(t.getUTCMinutes() + 1);
  }
  return undefined; // e.g. 30 February: never
}

function parseRetention(key: string, value: unknown): number {
  const n = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_RETENTION) {
    throw new SnapshotConfigError(key, `"${String(value)}" is not a whole number from 1 to ${MAX_RETENTION}; it is how many scheduled snapshots are kept`);
  }
  return n;
}

/** Applies `etcd-snapshot.*` changes to a copy of the settings, validating every one first. */
export function applySnapshotChanges(current: SnapshotSettings, changes: Record<string, unknown>): SnapshotSettings {
  const next = { ...current };
  for (const [key, value] of Object.entries(changes)) {
    if (key === 'etcd-snapshot.schedule') {
      const text = value === false ? 'off' : String(value);
      const parsed = parseSchedule(text, key);
      if (parsed.kind === 'cron' && nextRun(parsed, new Date()) === undefined) throw new SnapshotConfigError(key, `"${text}" never fires; ${HINT}`);
      next.schedule = parsed.kind === 'off' ? '' : text.trim();
    } else if (key === 'etcd-snapshot.retention') {
      next.retention = parseRetention(key, value);
    } else {
      throw new SnapshotConfigError(key, `unknown key; etcd-snapshot has ${SNAPSHOT_KEYS.join(', ')}`);
    }
  }
  return next;
}

/** The flat view `k8s get` prints. */
export function flattenSnapshotSettings(s: SnapshotSettings): Record<string, unknown> {
  return { 'etcd-snapshot.schedule': s.schedule || 'off', 'etcd-snapshot.retention': s.retention };
}

/** Whether a `k8s set`/`k8s get` key belongs to the snapshot settings. */
export function isSnapshotKey(key: string): boolean {
  return key === 'etcd-snapshot' || key.startsWith('etcd-snapshot.');
}
