/**
 * Runs the CLI in this process, capturing what it prints and its exit code.
 */
import { vi } from 'vitest';
import { runCli } from '../../src/cli/main.js';

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs `coco <args>` in-process. */
export function coco(...args: string[]): Promise<CliRun> {
  return cocoSeeing(() => undefined, ...args);
}

/** Runs `coco <args>` in-process, showing `onErr` each piece of stderr as it is written. */
export async function cocoSeeing(
  onErr: (text: string) => void,
  ...args: string[]
): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const toErr = (text: string): void => {
    err.push(text);
    onErr(text);
  };
  const log = vi
    .spyOn(console, 'log')
    .mockImplementation((...a: unknown[]) => void out.push(a.map(String).join(' ')));
  const error = vi
    .spyOn(console, 'error')
    .mockImplementation((...a: unknown[]) => void toErr(a.map(String).join(' ')));
  const stdout = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    });
  const stderr = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      toErr(String(chunk));
      return true;
    });
  try {
    const code = await runCli(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    stdout.mockRestore();
    stderr.mockRestore();
  }
}
