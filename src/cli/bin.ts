#!/usr/bin/env node
/**
 * The `coco` executable.
 *
 * @module
 */
import { describeError, EXIT } from './errors.js';
import { runCli } from './main.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(describeError(error));
    process.exitCode = EXIT.error;
  },
);
