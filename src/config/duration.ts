// Durations as users write them: 90s, 5m, 24h, 30d, 4mo, 1y, and combinations such as 1h30m.
const DAY = 86_400_000;
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY, mo: 30 * DAY, y: 365 * DAY };
const PART = /(\d+(?:\.\d+)?)(ms|mo|s|m|h|d|y)/g;

/** Milliseconds, or undefined when the text is not entirely made of duration parts. */
export function tryParseDurationMs(text: string): number | undefined {
  let total = 0;
  let consumed = '';
  for (const m of text.trim().matchAll(PART)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    consumed += m[0];
  }
  return consumed && consumed === text.trim() ? total : undefined;
}
