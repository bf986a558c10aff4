/** The coco error a promise rejects with (fails the test if it resolves or rejects otherwise). */
import { CocoError } from '../../src/core/errors.js';

/** Awaits `promise`, expecting it to reject with a {@link CocoError}, and returns that error. */
export async function rejection(promise: Promise<unknown>): Promise<CocoError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CocoError) return error;
    throw error;
  }
  throw new Error('expected a rejection with a coco error');
}
