/**
 * Durations as people write them — `30d`, `12h`, `90m`, `45s`, `500ms` — for the configuration
 * (`retention.maxAge`, ...) and the CLI (`coco prune --older-than 30d`). One whole number and one
 * unit; the configuration also takes a plain number of milliseconds.
 *
 * @module
 */
import { z } from 'zod';

/** Milliseconds per unit. */
const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** What a duration looks like, for messages. */
export const DURATION_HELP = 'a whole number and a unit: ms, s, m, h or d (e.g. 30d, 12h, 90m)';

/**
 * The milliseconds of a duration such as `30d`, or null if `text` is not one (or overflows).
 * Zero is a duration (`0m`); callers that need a positive one say so.
 */
export function parseDuration(text: string): number | null {
  const m = /^([0-9]{1,15})(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return null;
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  return Number.isSafeInteger(ms) ? ms : null;
}

/** A positive duration in the configuration: `"30d"`-style text, or a number of milliseconds. */
export const durationSchema = z.union([z.number(), z.string()]).transform((value, ctx): number => {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === null || !Number.isSafeInteger(ms) || ms <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `${JSON.stringify(value)} is not a positive duration: ${DURATION_HELP}, or a whole number of milliseconds`,
    });
    return z.NEVER;
  }
  return ms;
});
