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

/** Secrets read from a file, and a warning when the file is open to others. */
export interface SecretsFromFile {
  readonly secrets: readonly string[];
  /** Set when group or others may read the file. */
  readonly warning: string | null;
}

/** Most secrets an agent's file may hold: the one in use, and those a rotation still accepts. */
export const MAX_SECRETS = 4;

/**
 * Reads an agent's secrets file: one secret per line (blank lines and surrounding spaces
 * ignored), each at least {@link MIN_SECRET_LENGTH} characters, at most {@link MAX_SECRETS}. Every
 * line is accepted alike: a rotation adds the new secret, moves the engines to it, then removes
 * the old. The messages name the file and the line, never a secret.
 *
 * @throws CocoError `INVALID_OPTIONS` when the file cannot be read or a line is refused.
 */
export function readSecretsFile(path: string): SecretsFromFile {
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
  const lines = text.split(/\r?\n/).map((line, i) => ({ secret: line.trim(), line: i + 1 }));
  const given = lines.filter((l) => l.secret !== '');
  const short = given.find((l) => l.secret.length < MIN_SECRET_LENGTH);
  if (given.length === 0 || short) {
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `the secret file ${path} must hold a secret of at least ${MIN_SECRET_LENGTH} characters` +
        (short ? ` (line ${short.line} is shorter)` : ''),
    );
  }
  if (given.length > MAX_SECRETS)
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `the secret file ${path} holds ${given.length} secrets; at most ${MAX_SECRETS}, one per line`,
    );
  // POSIX permission bits; Windows reports none of these, so it never warns there.
  const open = (mode & 0o044) !== 0;
  return {
    secrets: given.map((l) => l.secret),
    warning: open
      ? `the secret file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`
      : null,
  };
}

/**
 * Reads a file holding one secret (an engine's side of an agent's secret, an API token): its
 * content, trimmed (a trailing newline is not part of the secret), at least
 * {@link MIN_SECRET_LENGTH} characters. The messages name the file, never its content.
 *
 * @throws CocoError `INVALID_OPTIONS` when the file cannot be read, holds too short a secret, or
 *   several lines (an agent's rotation file: the engine signs with one secret).
 */
export function readSecretFile(path: string): SecretFromFile {
  const { secrets, warning } = readSecretsFile(path);
  if (secrets.length > 1)
    throw new CocoError(
      ErrorCode.InvalidOptions,
      `the secret file ${path} holds ${secrets.length} lines; this one takes a single secret`,
    );
  return { secret: secrets[0]!, warning };
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
