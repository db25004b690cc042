#!/usr/bin/env node
/**
 * The `ferry` process: parses argv (src/cli.ts), runs the command, and is
 * the one place that exits. Errors carry their exit code up to the one
 * catch at the bottom, which prints them as one line (and a JSON event with
 * --json).
 */
import './threadpool.js';
import './heap.js';
import { hideBin } from 'yargs/helpers';
import { parseArgs, type OutputArgs, type ReceiveRequest, type RelayRequest, type SendRequest } from './cli.js';
import { jsonLine, Output, writeHeldLines } from './output/index.js';
import { terminalSafe } from './printable.js';
import { exitCodeOf } from './exit-codes.js';
import { FerryError, abortError, toFerryError } from './protocol/errors.js';
import { askCode } from './prompt.js';
import { checkCode } from './secure/code.js';
import { prepareClient } from './secure/index.js';
import { receive } from './receiver/index.js';
import { cleanPartials } from './receiver/partials.js';
import type { RelayEvent } from './relay/log.js';
import { startRelay } from './relay/server.js';
import { formatPeer } from './connection.js';
import { send } from './sender/index.js';

function outputFor(args: OutputArgs, out: NodeJS.WritableStream = process.stdout): Output {
  return new Output({ ...args, bars: !args.json && !args.quiet && process.stderr.isTTY === true, out, err: process.stderr });
}

/** SIGINT and SIGTERM abort the transfer cleanly (the peer is told); a second one exits at once. */
function signalController(): AbortController {
  const controller = new AbortController();
  const on = (signal: 'SIGINT' | 'SIGTERM'): void => {
    process.on(signal, () => {
      if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
      controller.abort(new FerryError(signal === 'SIGINT' ? 'ERR_SIGINT' : 'ERR_SIGTERM', `interrupted by ${signal}`));
    });
  };
  on('SIGINT');
  on('SIGTERM');
  return controller;
}

/** The code given, or one asked for on the terminal; without either, a usage error. */
async function codeFor(options: SendRequest): Promise<string | undefined> {
  // Going first (--listen, or a relay without a code), the sender makes the code.
  if (options.code !== undefined || options.insecure || options.listen !== undefined || options.relay !== undefined) return options.code;
  // Standard input that carries the file, or is no terminal, cannot also answer a question.
  // Checked as soon as it is typed, so a slip is named before anything dials the receiver.
  if (process.stdin.isTTY === true && !options.files.includes('-')) return checkCode(await askCode(process.stdin, process.stderr));
  throw new FerryError('ERR_USAGE', 'give the code the receiver printed: --code CODE, or FERRY_CODE=CODE (or --insecure on both sides)');
}

async function sendFiles(output: Output, options: SendRequest, args: OutputArgs): Promise<number> {
  const code = await codeFor(options);
  const controller = signalController();
  // A notice is for a person: one line on stderr, never in --json's stream.
  const onNotice = (message: string): void => void (args.json ? undefined : process.stderr.write(`${terminalSafe(`ferry: ${message}`)}\n`));
  const summary = await send({ ...options, ...(code === undefined ? {} : { code }), onEvent: output.handle, onNotice, signal: controller.signal });
  output.stop();
  return summary.exitCode;
}

async function receiveFiles(output: Output, options: ReceiveRequest): Promise<number> {
  const controller = signalController();
  const { stdout, ...rest } = options;
  const receiver = await receive({ ...rest, ...(stdout ? { stdout: process.stdout } : {}), onEvent: output.handle, signal: controller.signal });
  const exitCode = await receiver.done;
  output.stop();
  return exitCode;
}

/**
 * `ferry relay` until SIGINT or SIGTERM: its log on stdout, a JSON line per
 * event with --json, else one line each (only the listening line with --quiet).
 */
async function runRelay(args: OutputArgs, options: RelayRequest): Promise<number> {
  const controller = signalController();
  const print = (event: RelayEvent): void => {
    if (args.json) process.stdout.write(`${jsonLine(event)}\n`);
    else if (event.event === 'listening') process.stdout.write(`${terminalSafe(`ferry relay: listening on ${formatPeer(event.host, event.port)}`)}\n`);
    else if (!args.quiet) process.stdout.write(`${terminalSafe(`ferry relay: ${event.message}`)}\n`);
  };
  const relay = await startRelay({ ...options, onEvent: print, signal: controller.signal });
  await new Promise((resolve) => controller.signal.addEventListener('abort', resolve, { once: true }));
  await relay.close();
  return exitCodeOf(abortError(controller.signal).code);
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, process.env, process.stdout.columns || 100);
  switch (parsed.command) {
    case 'print':
      process.stdout.write(`${parsed.text}\n`);
      return 0;
    case 'clean': {
      const count = await cleanPartials(parsed.dir, { all: true });
      if (parsed.output.json) process.stdout.write(`${jsonLine({ event: 'cleaned', dir: parsed.dir, files: count })}\n`);
      else if (!parsed.output.quiet) process.stdout.write(`${terminalSafe(`ferry: deleted ${count} partial file${count === 1 ? '' : 's'} under ${parsed.dir}`)}\n`);
      return 0;
    }
    case 'receive':
      // With --stdout the file is on stdout: every message goes to stderr.
      return receiveFiles(outputFor(parsed.output, parsed.options.stdout ? process.stderr : process.stdout), parsed.options);
    case 'send':
      return sendFiles(outputFor(parsed.output), parsed.options, parsed.output);
    case 'relay':
      return runRelay(parsed.output, parsed.options);
  }
}

/**
 * Exits once stdout has taken everything written to it. A pipe whose reader
 * is behind holds writes in the process (a burst of --json events: 10,000
 * `unchanged` at once), and process.exit() would drop them; a reader that
 * never reads delays the exit by 5 s at most.
 */
function exitFlushed(code: number): void {
  setTimeout(() => process.exit(code), 5000).unref();
  process.stdout.write('', () => process.exit(code));
}

/**
 * `ferry send` with a code on its command line or in FERRY_CODE: its
 * password hash (scrypt, about 50 ms in the thread pool) starts before
 * yargs parses, so that it overlaps that instead of the wait after the
 * connect. send() asks for it again and gets the same one (cached per code);
 * a malformed code is ignored here and reported by the parse.
 */
function hashCodeEarly(argv: readonly string[], env: NodeJS.ProcessEnv): void {
  if (argv[0] !== 'send' || argv.includes('--insecure')) return;
  const at = argv.findIndex((a) => a === '--code' || a.startsWith('--code='));
  const code = at < 0 ? env.FERRY_CODE : argv[at]!.startsWith('--code=') ? argv[at]!.slice('--code='.length) : argv[at + 1];
  if (code) prepareClient(code);
}

hashCodeEarly(hideBin(process.argv), process.env);

main(hideBin(process.argv)).then(
  (code) => exitFlushed(code),
  (caught: unknown) => {
    writeHeldLines();
    const err = toFerryError(caught);
    if (process.argv.includes('--json')) {
      process.stdout.write(`${jsonLine({ event: 'error', code: err.code, message: err.message, exitCode: exitCodeOf(err.code) })}\n`);
    }
    process.stderr.write(`${terminalSafe(`ferry: ${err.message}`)}\n`);
    if (err.code === 'ERR_USAGE') process.stderr.write('ferry: try `ferry --help`\n');
    if (process.env.FERRY_DEBUG === '1') process.stderr.write(`${(err.cause as Error | undefined)?.stack ?? err.stack}\n`);
    process.exit(exitCodeOf(err.code));
  },
);
