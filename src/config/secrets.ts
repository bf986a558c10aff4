/**
 * Where shared secrets come from: a file or the environment, never the process arguments (any
 * user of the host reads those, in `ps` or `/proc/<pid>/cmdline`), and never shown in a message
 * or a log line.
 *
 * @module
 */
import { readFileSync, statSync } from 'node:fs';
import { CocoError, ErrorCode } from '../core/errors.js';

/** Shortest secret accepted: an HMAC key of 16 characters or more. */
export const MIN_SECRET_LENGTH = 16;

/** A secret read from a file, and a warning when the file is open to others. */
export interface SecretFromFile {
  readonly secret: string;
  /** Set when group or others may read the file. */
  readonly warning: string | null;
}

/**
 * Reads a secret file: its content, trimmed (a trailing newline is not part of the secret), at
 * least {@link MIN_SECRET_LENGTH} characters. The messages name the file, never its content.
 *
 * @throws CocoError `INVALID_OPTIONS` when the file cannot be read or holds too short a secret.
 */
export function readSecretFile(path: string): SecretFromFile {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `cannot read the secret file ${path}${typeof code === 'string' ? ` (${code})` : ''}`,
    );
  }
  const secret = text.trim();
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `the secret file ${path} must hold a secret of at least ${MIN_SECRET_LENGTH} characters`,
    );
  }
  // POSIX permission bits; Windows reports none of these, so it never warns there.
  const open = (mode & 0o044) !== 0;
  return {
    secret,
    warning: open
      ? `the secret file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`
      : null,
  };
}

/**
 * Replaces each `${NAME}` in `text` by the environment variable NAME (`$${` stands for a literal
 * `${`). Messages name the variable, never a value.
 *
 * @throws CocoError `INVALID_OPTIONS` naming a variable that is not set.
 */
export function expandEnv(text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(/\$(\$)?\{([^}]*)\}/g, (whole, escaped: string | undefined, name: string) => {
    if (escaped !== undefined) return whole.slice(1);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new CocoError(
        ErrorCode.InvalidOptions,
        `"\${${name}}" does not name an environment variable (letters, digits and _)`,
      );
    }
    const value = env[name];
    if (value === undefined) {
      throw new CocoError(ErrorCode.InvalidOptions, `the environment variable ${name} is not set`, {
        details: { variable: name },
      });
    }
    return value;
  });
}
