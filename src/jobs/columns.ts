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
