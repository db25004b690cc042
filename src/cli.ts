#!/usr/bin/env node
/**
 * The ferry command. Every command and option is declared here; handlers
 * only check their input and call the library. This is the one place that
 * exits the process: errors carry their exit code up to main().
 */
import yargs from 'yargs';
import './threadpool.js';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_TIMEOUT_MS } from './connection.js';
import { Output } from './output/index.js';
import { FerryError, toFerryError } from './protocol/errors.js';
import { DEFAULT_PORT, receive } from './receiver/index.js';
import { cleanPartials } from './receiver/paths.js';
import { send } from './sender/index.js';

interface CommonArgs {
  json: boolean;
  quiet: boolean;
  timeout: number;
}

function outputFor(args: CommonArgs, out: NodeJS.WritableStream = process.stdout): Output {
  return new Output({
    json: args.json,
    quiet: args.quiet,
    bars: !args.json && !args.quiet && process.stderr.isTTY === true,
    out,
  });
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

/** --code, else FERRY_CODE (so the code need not be in argv, which other local users can read); none with --insecure. */
function codeOf(args: { code?: string | undefined; insecure: boolean }): string | undefined {
  // Empty means unset: `--code "$CODE"` with CODE unset must not pass as a code.
  const code = args.code || process.env.FERRY_CODE || undefined;
  if (args.insecure) {
    if (args.code !== undefined) throw new FerryError('ERR_USAGE', '--code and --insecure do not go together');
    return undefined;
  }
  return code;
}

function timeoutMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) throw new FerryError('ERR_USAGE', `--timeout must be a positive number of seconds, not ${seconds}`);
  return Math.round(seconds * 1000);
}

/** Parses HOST, HOST:PORT, [IPV6]:PORT or a bare IPv6 address. */
export function parseTarget(to: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(to);
  let host: string;
  let port: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
  } else if ((to.match(/:/g) ?? []).length > 1) {
    host = to; // a bare IPv6 address, no port
  } else {
    const colon = to.lastIndexOf(':');
    host = colon === -1 ? to : to.slice(0, colon);
    port = colon === -1 ? undefined : to.slice(colon + 1);
  }
  if (host === '') throw new FerryError('ERR_USAGE', `--to ${to}: no host`);
  return { host, port: port === undefined ? DEFAULT_PORT : parsePort(port, `--to ${to}`) };
}

function parsePort(value: string | number, what: string): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new FerryError('ERR_USAGE', `${what}: port must be 0 to 65535`);
  return n;
}

/**
 * yargs drops a lone '-' from positionals; it stands for standard input, so
 * it is carried through parsing under another spelling and restored.
 */
const STDIN_ARG = '\u0000stdin';
const fromArg = (value: string): string => (value === STDIN_ARG ? '-' : value);

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  await yargs(argv.map((a) => (a === '-' ? STDIN_ARG : a)))
    .scriptName('ferry')
    .usage('$0 <command>\n\nFast, verified file transfer: `ferry receive` on one host, `ferry send FILE --to HOST` on the other.')
    .option('json', { type: 'boolean', default: false, describe: 'newline-delimited JSON events on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress bar, no summary lines (errors still print)' })
    .option('timeout', { type: 'number', default: DEFAULT_TIMEOUT_MS / 1000, describe: 'seconds to wait for a silent peer' })
    .option('code', { type: 'string', describe: 'the one-time code (default: FERRY_CODE; a receiver makes a fresh one)' })
    .option('insecure', { type: 'boolean', default: false, describe: 'no code, no encryption: plain TCP (both sides must say so)' })
    .command(
      'receive',
      'listen for senders and save their files, each verified',
      (y) =>
        y
          .option('dir', { alias: 'd', type: 'string', default: '.', describe: 'folder to save into (must exist)' })
          .option('host', { type: 'string', describe: 'address to listen on (default: all interfaces, IPv6 and IPv4)' })
          .option('port', { alias: 'p', type: 'number', default: DEFAULT_PORT, describe: 'port to listen on; 0 lets the OS choose' })
          .option('once', { type: 'boolean', default: false, describe: "exit after the first sender's transfer, with its exit code" })
          .option('overwrite', { type: 'boolean', default: false, describe: 'replace existing files (default: refuse them)' })
          .option('max-size', { type: 'number', describe: 'refuse files larger than this many bytes' })
          .option('fsync', { type: 'boolean', default: true, describe: 'flush each file to disk before naming it (--no-fsync to skip)' })
          .option('stdout', { type: 'boolean', default: false, describe: 'write the one incoming file to standard output (implies --once; messages go to stderr)' })
          .option('clean', { type: 'boolean', default: false, describe: 'delete the partial files kept for resuming (.ferry-*.part) under --dir, and exit' }),
      async (args) => {
        if (args.clean) {
          const count = await cleanPartials(args.dir, { all: true });
          if (args.json) process.stdout.write(`${JSON.stringify({ event: 'cleaned', dir: args.dir, files: count })}\n`);
          else if (!args.quiet) process.stdout.write(`ferry: deleted ${count} partial file${count === 1 ? '' : 's'} under ${args.dir}\n`);
          return;
        }
        const output = outputFor(args, args.stdout ? process.stderr : process.stdout);
        const controller = signalController();
        if (args['max-size'] !== undefined && !(args['max-size'] >= 0)) throw new FerryError('ERR_USAGE', '--max-size must be a number of bytes');
        const code = codeOf(args);
        const receiver = await receive({
          dir: args.dir,
          ...(code === undefined ? {} : { code }),
          insecure: args.insecure,
          ...(args.host === undefined ? {} : { host: args.host }),
          port: parsePort(args.port, '--port'),
          once: args.once,
          overwrite: args.overwrite,
          timeoutMs: timeoutMs(args.timeout),
          ...(args['max-size'] === undefined ? {} : { maxSize: args['max-size'] }),
          fsync: args.fsync,
          ...(args.stdout ? { stdout: process.stdout } : {}),
          onEvent: output.handle,
          signal: controller.signal,
        });
        exitCode = await receiver.done;
        output.stop();
      },
    )
    .command(
      'send [files..]',
      'send files to a receiver',
      (y) =>
        y
          .positional('files', { type: 'string', array: true, default: [] as string[], describe: 'files and folders to send; - reads standard input (with --name)' })
          .option('name', { type: 'string', describe: 'the name standard input (-) is saved under' })
          .option('retries', { type: 'number', default: 5, describe: 'new attempts after a broken connection, each resuming where the last stopped' })
          .option('retry-delay', { type: 'number', default: 1, describe: 'seconds before the first retry; doubles each time, at most 16' })
          .option('to', { alias: 't', type: 'string', demandOption: true, describe: 'receiver as HOST[:PORT] ([IPV6]:PORT), port 7878 by default' })
          .option('hash', { type: 'string', choices: ['blake3', 'sha256'], describe: 'hash algorithm (default: the fastest both sides know)' })
          .option('chunk-size', { type: 'number', describe: 'bytes per data frame (default 1 MiB)' }),
      async (args) => {
        args.files = args.files.map(fromArg);
        if (args.name !== undefined) args.name = fromArg(args.name);
        if (args.files.length === 0) throw new FerryError('ERR_USAGE', 'name at least one FILE to send');
        if (args.name !== undefined && !args.files.includes('-')) throw new FerryError('ERR_USAGE', '--name is for standard input (-)');
        if (args.files.filter((f) => f === '-').length > 1) throw new FerryError('ERR_USAGE', 'standard input (-) can be sent once');
        if (!(Number.isInteger(args.retries) && args.retries >= 0)) throw new FerryError('ERR_USAGE', '--retries must be a whole number');
        if (!(args['retry-delay'] >= 0)) throw new FerryError('ERR_USAGE', '--retry-delay must be a number of seconds');
        const target = parseTarget(args.to);
        const output = outputFor(args);
        const controller = signalController();
        if (target.port === 0) throw new FerryError('ERR_USAGE', `--to ${args.to}: port 0 cannot be dialled`);
        const code = codeOf(args);
        if (code === undefined && !args.insecure) {
          throw new FerryError('ERR_USAGE', 'give the code the receiver printed: --code CODE, or FERRY_CODE=CODE (or --insecure on both sides)');
        }
        const summary = await send({
          files: args.files,
          ...(code === undefined ? {} : { code }),
          insecure: args.insecure,
          ...target,
          timeoutMs: timeoutMs(args.timeout),
          ...(args.hash === undefined ? {} : { hash: args.hash }),
          ...(args['chunk-size'] === undefined ? {} : { chunkSize: args['chunk-size'] }),
          ...(args.name === undefined ? {} : { stdinName: args.name }),
          retries: args.retries,
          retryDelayMs: Math.round(args['retry-delay'] * 1000),
          onEvent: output.handle,
          signal: controller.signal,
        });
        output.stop();
        exitCode = summary.exitCode;
      },
    )
    .demandCommand(1, 'name a command: receive or send')
    .strict()
    .help()
    .version()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, err) => {
      throw err instanceof FerryError ? err : new FerryError('ERR_USAGE', message || (err ? err.message : 'bad usage'));
    })
    .parseAsync();
  return exitCode;
}

main(hideBin(process.argv)).then(
  (code) => process.exit(code),
  (caught: unknown) => {
    const err = toFerryError(caught);
    const json = process.argv.includes('--json');
    if (json) {
      process.stdout.write(`${JSON.stringify({ event: 'error', code: err.code, message: err.message, exitCode: err.exitCode })}\n`);
    }
    process.stderr.write(`ferry: ${err.message}\n`);
    if (err.code === 'ERR_USAGE') process.stderr.write('ferry: try `ferry --help`\n');
    if (process.env.FERRY_DEBUG === '1') process.stderr.write(`${(err.cause as Error | undefined)?.stack ?? err.stack}\n`);
    process.exit(err.exitCode);
  },
);
