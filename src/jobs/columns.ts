/**
 * Column parsers both job stores share: the job tables hold the same values on SQLite and on
 * PostgreSQL (only integers arrive differently), so an error column and a percentage are read
 * the same way.
 *
 * @module
 */
import { z } from 'zod';

/** A percentage column, 0..100. */
export const percentColumn = z.number().min(0).max(100);

/** An error info stored as JSON text (NULL for none). */
export const errorColumn = z
  .string()
  .nullable()
  .transform((text, ctx): unknown => {
    if (text === null) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `invalid JSON (${(error as Error).message})` });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .looseObject({ code: z.string(), message: z.string(), details: z.unknown().optional() })
      .nullable(),
  );

/**
 * The condition under which an upsert may replace a stored job or step row (SQL shared by both
 * job stores): not from ended back to not ended, and not with a compensation that goes back
 * (none → compensating → compensated | failed). `cur` names the stored row, `next` the new one.
 */
export function forwardOnly(cur: string, next: string): string {
  const rank = (row: string): string =>
    `(CASE ${row}.compensation WHEN 'none' THEN 0 WHEN 'compensating' THEN 1 ELSE 2 END)`;
  return `(${next}.ended_at IS NOT NULL OR ${cur}.ended_at IS NULL) AND ${rank(next)} >= ${rank(cur)}`;
}
