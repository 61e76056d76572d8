#!/usr/bin/env node
/**
 * The rebasin command line. Results go to stdout, progress and messages to stderr.
 * Exit codes: 0 ok, 1 a failed check (only with --check), 2 bad usage or bad input.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isInputError } from '../errors.js';
import { EXIT_USAGE, type GlobalOptions } from './common.js';
import { demoCommand } from './demo.js';
import { alignCommand } from './align.js';
import { mergeCommand } from './merge.js';
import { barrierCommand, reportCommand } from './report.js';
import { specCommand } from './spec.js';
import { trainCommand } from './train.js';
import { convertCommand } from './convert.js';
import { acceptsOutputValue, guardOptionalValues } from './outputs.js';
import { cleanUpTempFilesOnSignals } from '../io/atomic.js';

/** The version in package.json (dist/src/cli/main.js sits three folders below it). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('rebasin')
    .description('Align the hidden units of independently trained networks (Git Re-Basin), measure the loss barrier, and merge them.')
    .version(packageVersion())
    .option('-q, --quiet', 'no progress or informational messages on stderr (warnings still print)')
    .option('--debug', 'show stack traces for errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();
  // Optional-value options (report --json [file]) never take a model file after them as their value.
  for (const make of [demoCommand, alignCommand, mergeCommand, barrierCommand, reportCommand, specCommand, trainCommand, convertCommand]) {
    program.addCommand(withRebasinPrefix(guardOptionalValues(make(globals), acceptsOutputValue)).exitOverride());
  }
  return withRebasinPrefix(program);
}

/**
 * One prefix for every error line: commander's usage errors ("error: unknown option ...") print as
 * "rebasin: unknown option ...", like the errors of our own checks (main below).
 */
function withRebasinPrefix(cmd: Command): Command {
  const previous = cmd.configureOutput().outputError ?? ((text: string, write: (s: string) => void) => write(text));
  return cmd.configureOutput({ outputError: (text, write) => previous(text.replace(/^error: /, 'rebasin: '), write) });
}

export async function main(argv: string[]): Promise<number> {
  // An interrupted run removes its temp files and exits 130 (SIGINT) or 143 (SIGTERM): see io/atomic.ts.
  cleanUpTempFilesOnSignals();
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0; usage errors were already printed.
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const debug = argv.includes('--debug');
    if (isInputError(e)) {
      process.stderr.write(`rebasin: ${e.message}\n`);
      if (debug) process.stderr.write(`${e.stack}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`rebasin: internal error: ${(e as Error).message}\n`);
    if (debug) process.stderr.write(`${(e as Error).stack}\n`);
    else process.stderr.write('(run with --debug for the stack trace; this is a bug, please report it)\n');
    return 3;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
