/**
 * The ferry command line: every command and option is declared here, and
 * parseArgs() turns argv into a checked, typed request without running
 * anything (unit tests call it). src/main.ts is the process entry that
 * carries the request out and maps errors to exit codes.
 */
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { DEFAULT_TIMEOUT_MS } from './connection.js';
import { PROTOCOL_VERSION } from './protocol/constants.js';
import { FerryError } from './protocol/errors.js';
import { MIN_RATE, parseRate } from './rate-limit.js';
import { checkCode } from './secure/code.js';
import { DEFAULT_FIND_MS } from './discovery/find.js';
import { DEFAULT_PORT, type ReceiveOptions } from './receiver/index.js';
import { RELAY_LIMITS, type RelayLimits } from './relay/limits.js';
import { RELAY_DEFAULT_PORT } from './relay/wire.js';
import type { SendOptions } from './sender/index.js';

export interface OutputArgs {
  json: boolean;
  quiet: boolean;
  /** Every file's full line, digest included, however many files. */
  verbose: boolean;
}

/** What `ferry send` will do. `code` is absent when none was given (main.ts may ask for it) and with --insecure. */
export type SendRequest = Required<Pick<SendOptions, 'files' | 'insecure' | 'timeoutMs' | 'retries' | 'retryDelayMs' | 'waitMs' | 'update' | 'compress'>> &
  Pick<SendOptions, 'host' | 'port' | 'relay' | 'listen' | 'findMs' | 'code' | 'hash' | 'chunkSize' | 'stdinName' | 'limitRate' | 'skipSame'>;

export type ReceiveRequest = Required<Pick<ReceiveOptions, 'dir' | 'once' | 'overwrite' | 'allowUpdate' | 'allowHidden' | 'timeoutMs' | 'fsync' | 'insecure' | 'announce'>> &
  Pick<ReceiveOptions, 'port' | 'code' | 'host' | 'maxSize' | 'limitRate' | 'relay' | 'from'> & {
    /** The one incoming file goes to standard output (messages to stderr). */
    stdout: boolean;
  };

/** What `ferry relay` will do: where to listen, and the limits given on the command line. */
export interface RelayRequest {
  host?: string;
  port: number;
  limits: Partial<RelayLimits>;
}

export type Parsed =
  | { command: 'send'; output: OutputArgs; options: SendRequest }
  | { command: 'relay'; output: OutputArgs; options: RelayRequest }
  | { command: 'receive'; output: OutputArgs; options: ReceiveRequest }
  | { command: 'clean'; output: OutputArgs; dir: string }
  /** --help, --version, `completion` and shell completions: text to print, nothing to run. */
  | { command: 'print'; text: string };

export type Env = Record<string, string | undefined>;

/**
 * Parses ferry's arguments (without the node and script paths). Throws a
 * FerryError ERR_USAGE for anything wrong, with yargs's message or ours.
 */
export function parseArgs(argv: readonly string[], env: Env = {}, columns = 100): Parsed {
  let parsed: Parsed | null = null;
  let printed = '';
  const args = argv.map((a) => (a === '-' ? STDIN_ARG : a));
  yargs(args)
    .scriptName('ferry')
    .usage('$0 <command>\n\nFast, verified file transfer: `ferry receive` on one host, `ferry send FILE --to HOST` on the other.')
    .option('json', { type: 'boolean', default: false, describe: 'newline-delimited JSON events on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress bar, no summary lines (errors still print)' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: "each file's full line with its digest and path, however many files" })
    .option('timeout', { type: 'number', default: DEFAULT_TIMEOUT_MS / 1000, describe: 'seconds to wait for a silent peer' })
    .option('code', { type: 'string', describe: 'the one-time code (default: FERRY_CODE; a receiver makes a fresh one; a sender on a terminal asks)' })
    .option('insecure', { type: 'boolean', default: false, describe: 'no code, no encryption: plain TCP (both sides must say so)' })
    .option('limit-rate', { type: 'string', describe: 'at most RATE bytes of file data per second (K, M, G: 1K = 1024; at least 16K); a receiver: all senders together; a relay: each pair' })
    .command(
      'receive',
      'listen for senders and save their files, each verified',
      (y) =>
        y
          .option('dir', { alias: 'd', type: 'string', default: '.', describe: 'folder to save into (must exist)' })
          .option('host', { type: 'string', describe: 'address to listen on (default: all interfaces, IPv6 and IPv4)' })
          .option('port', { alias: 'p', type: 'number', describe: `port to listen on (default ${DEFAULT_PORT}); 0 lets the OS choose` })
          .option('relay', { type: 'string', describe: `wait at a relay, HOST[:PORT] (port ${RELAY_DEFAULT_PORT} by default; default: FERRY_RELAY): prints a code, or with --code fetches from the sender waiting there` })
          .option('from', { type: 'string', describe: 'dial a sender that listens (send --listen), HOST[:PORT], with its --code' })
          .option('once', { type: 'boolean', default: false, describe: "exit after the first sender's transfer, with its exit code" })
          .option('overwrite', { type: 'boolean', default: false, describe: 'replace existing files (default: refuse them)' })
          .option('allow-update', { type: 'boolean', default: false, describe: 'replace an existing file when its sender asks (send --update), verified first' })
          .option('allow-hidden', { type: 'boolean', default: false, describe: "accept names beginning with '.' at the top of --dir (.ssh, .bashrc) and writing into hidden folders already there" })
          .option('max-size', { type: 'number', describe: 'refuse files larger than this many bytes' })
          .option('fsync', { type: 'boolean', default: true, describe: 'flush each file to disk before naming it (--no-fsync to skip)' })
          .option('stdout', { type: 'boolean', default: false, describe: 'write the one incoming file to standard output (implies --once; messages go to stderr)' })
          .option('clean', { type: 'boolean', default: false, describe: 'delete the partial files kept for resuming (.ferry-*.part) under --dir, and exit' })
          .option('announce', { type: 'boolean', default: true, describe: 'announce this receiver on the LAN each second, so senders may leave out --to (--no-announce: stay quiet; never with --insecure)' }),
      (args) => {
        const output = outputArgs(args);
        parsed = args.clean ? { command: 'clean', output, dir: args.dir } : { command: 'receive', output, options: receiveRequest(args, env) };
      },
    )
    .command(
      'send [files..]',
      'send files to a receiver',
      (y) =>
        y
          .positional('files', { type: 'string', array: true, default: [] as string[], describe: 'files and folders to send; - reads standard input (with --name)' })
          .option('name', { type: 'string', describe: 'the name standard input (-) is saved under' })
          .option('skip-same', { type: 'boolean', describe: 'ask first, and do not send files the receiver has with the same content (default: when sending a folder, and on retries; --no-skip-same: never)' })
          .option('update', { type: 'boolean', default: false, describe: 'replace files that changed (the receiver must allow it: --allow-update)' })
          .option('compress', { type: 'boolean', default: false, describe: 'compress what compresses (for slow links; costs CPU on fast ones); needs a receiver that can decompress' })
          .option('retries', { type: 'number', default: 5, describe: 'new attempts after a broken connection, each resuming where the last stopped' })
          .option('retry-delay', { type: 'number', default: 1, describe: 'seconds before the first retry; doubles each time, at most 16' })
          .option('wait', { type: 'number', default: 0, describe: 'keep trying to reach the receiver this many seconds (for a receiver started after the sender); default: fail at once' })
          .option('to', { alias: 't', type: 'string', describe: 'receiver as HOST[:PORT] ([IPV6]:PORT), port 7878 by default; without --to, --relay or --listen, the receiver holding the code is found on the LAN' })
          .option('find-timeout', { type: 'number', default: DEFAULT_FIND_MS / 1000, describe: 'without --to: seconds to listen for receivers on the LAN' })
          .option('relay', { type: 'string', describe: `through a relay, HOST[:PORT] (port ${RELAY_DEFAULT_PORT} by default; default: FERRY_RELAY): with --code to the receiver waiting there, without one first, printing a code` })
          .option('listen', { type: 'boolean', default: false, describe: 'listen for the receiver (receive --from) instead of dialling it; prints a code' })
          .option('host', { type: 'string', describe: 'with --listen: address to listen on (default: all interfaces)' })
          .option('port', { alias: 'p', type: 'number', describe: `with --listen: port to listen on (default ${DEFAULT_PORT}); 0 lets the OS choose` })
          .option('hash', { type: 'string', choices: ['blake3', 'sha256'], describe: 'hash algorithm (default: the fastest both sides know)' })
          .option('chunk-size', { type: 'number', describe: 'bytes per data frame (default 1 MiB)' }),
      (args) => {
        parsed = { command: 'send', output: outputArgs(args), options: sendRequest(args, env) };
      },
    )
    .command('relay', 'pair senders and receivers that cannot reach each other, and forward their bytes (it never sees names, content or codes)', (y) => relayOptions(y), (args) => {
      parsed = { command: 'relay', output: outputArgs(args), options: relayRequest(args) };
    })
    .completion('completion', 'print a bash or zsh completion script (zsh when $SHELL is zsh): ferry completion >> ~/.bashrc', completeWord)
    .demandCommand(1, 'name a command: receive, send or relay')
    .strict()
    .help()
    .version(versionText())
    .exitProcess(false)
    .wrap(Math.min(100, columns))
    .fail((message, err) => {
      throw err instanceof FerryError ? err : new FerryError('ERR_USAGE', message || (err ? err.message : 'bad usage'));
    })
    // With a callback yargs hands over --help and --version text instead of printing it.
    .parse(args, {}, (_err, _argv, output) => {
      printed = output;
    });
  return parsed ?? { command: 'print', text: printed };
}

function outputArgs(args: { json: boolean; quiet: boolean; verbose: boolean }): OutputArgs {
  return { json: args.json, quiet: args.quiet, verbose: args.verbose };
}

/**
 * yargs offers every command and option whatever was typed, leaving the
 * shell to keep those that fit; ferry keeps them itself, so that `ferry rec`
 * completes to `receive` alike in every shell and in a test.
 */
function completeWord(current: string, _argv: unknown, defaults: (done: (err: Error | null, list?: string[]) => void) => void, done: (list: string[]) => void): void {
  defaults((_err, list) => done((list ?? []).filter((candidate) => candidate.startsWith(current))));
}

let version: string | undefined;

/**
 * `ferry 0.1.0 (protocol 1)`: which ferry, and which wire protocol it
 * speaks, the one thing two ferries must agree on. Read from the package's
 * own package.json (one level above both src/ and dist/), not the one yargs
 * would look for from the working directory.
 */
function versionText(): string {
  if (version === undefined) {
    let number = 'unknown';
    try {
      number = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // A copy of the bundle without its package.json: the protocol is still worth printing.
    }
    version = `ferry ${number} (protocol ${PROTOCOL_VERSION})`;
  }
  return version;
}

interface CommonArgs {
  timeout: number;
  code?: string | undefined;
  insecure: boolean;
  'limit-rate'?: string | undefined;
}

function sendRequest(
  args: CommonArgs & {
    files: string[];
    name?: string | undefined;
    retries: number;
    'retry-delay': number;
    wait: number;
    to?: string | undefined;
    relay?: string | undefined;
    listen: boolean;
    host?: string | undefined;
    port?: number | undefined;
    'find-timeout': number;
    hash?: string | undefined;
    'chunk-size'?: number | undefined;
    'skip-same'?: boolean | undefined;
    update: boolean;
    compress: boolean;
  },
  env: Env,
): SendRequest {
  const files = args.files.map(fromArg);
  const name = args.name === undefined ? undefined : fromArg(args.name);
  if (files.length === 0) throw usage('name at least one FILE to send');
  if (name !== undefined && !files.includes('-')) throw usage('--name is for standard input (-)');
  if (files.filter((f) => f === '-').length > 1) throw usage('standard input (-) can be sent once');
  if (!(Number.isInteger(args.retries) && args.retries >= 0)) throw usage('--retries must be a whole number');
  if (!(args['retry-delay'] >= 0)) throw usage('--retry-delay must be a number of seconds');
  if (!(Number.isFinite(args.wait) && args.wait >= 0)) throw usage('--wait must be a number of seconds');
  const way = sendWay(args, env);
  const code = codeOf(args, env);
  const limitRate = limitRateOf(args['limit-rate']);
  return {
    files,
    ...way,
    insecure: args.insecure,
    timeoutMs: timeoutMs(args.timeout),
    retries: args.retries,
    retryDelayMs: Math.round(args['retry-delay'] * 1000),
    waitMs: Math.round(args.wait * 1000),
    ...(args['skip-same'] === undefined ? {} : { skipSame: args['skip-same'] }),
    update: args.update,
    compress: args.compress,
    ...(code === undefined ? {} : { code }),
    ...(limitRate === undefined ? {} : { limitRate }),
    ...(args.hash === undefined ? {} : { hash: args.hash }),
    ...(args['chunk-size'] === undefined ? {} : { chunkSize: args['chunk-size'] }),
    ...(name === undefined ? {} : { stdinName: name }),
  };
}

function receiveRequest(
  args: CommonArgs & {
    dir: string;
    host?: string | undefined;
    port?: number | undefined;
    relay?: string | undefined;
    from?: string | undefined;
    once: boolean;
    overwrite: boolean;
    'allow-update': boolean;
    'allow-hidden': boolean;
    'max-size'?: number | undefined;
    fsync: boolean;
    stdout: boolean;
    announce: boolean;
  },
  env: Env,
): ReceiveRequest {
  const maxSize = args['max-size'];
  if (maxSize !== undefined && !(maxSize >= 0)) throw usage('--max-size must be a number of bytes');
  const code = codeOf(args, env);
  const limitRate = limitRateOf(args['limit-rate']);
  const way = receiveWay(args, env);
  return {
    dir: args.dir,
    ...way,
    once: args.once,
    overwrite: args.overwrite,
    allowUpdate: args['allow-update'],
    allowHidden: args['allow-hidden'],
    timeoutMs: timeoutMs(args.timeout),
    fsync: args.fsync,
    insecure: args.insecure,
    stdout: args.stdout,
    // Announced on the LAN only where it listens: at a relay or dialling a sender, nobody on the LAN can reach it that way.
    announce: args.announce && !args.insecure && way.relay === undefined && way.from === undefined,
    ...(code === undefined ? {} : { code }),
    ...(maxSize === undefined ? {} : { maxSize }),
    ...(limitRate === undefined ? {} : { limitRate }),
  };
}

/**
 * How `ferry send` reaches its receiver: --to, --relay or --listen, one of
 * them. FERRY_RELAY stands for --relay when none is given; any of them
 * given explicitly wins over it (FERRY_RELAY empty counts as unset). With
 * none of them and no FERRY_RELAY, the receiver is found on the LAN.
 */
function sendWay(
  args: { to?: string | undefined; relay?: string | undefined; listen: boolean; host?: string | undefined; port?: number | undefined; insecure: boolean; 'find-timeout': number },
  env: Env,
): Pick<SendRequest, 'host' | 'port' | 'relay' | 'listen' | 'findMs'> {
  const given = [args.to !== undefined && '--to', args.relay !== undefined && '--relay', args.listen && '--listen'].filter((w): w is string => w !== false);
  if (given.length > 1) throw usage(`${given.join(' and ')} do not go together: the receiver is reached one way`);
  if (!args.listen && (args.host !== undefined || args.port !== undefined)) throw usage('--host and --port are where a sender listens: with --listen');
  if (args.to !== undefined) {
    const target = parseTarget(args.to, DEFAULT_PORT, '--to');
    if (target.port === 0) throw usage(`--to ${args.to}: port 0 cannot be dialled`);
    return target;
  }
  if (args.listen) return { listen: { port: parsePort(args.port ?? DEFAULT_PORT, '--port'), ...(args.host === undefined ? {} : { host: args.host }) } };
  const relay = relayOf(args.relay, env);
  if (relay) return { relay };
  // None of them: the receiver holding the code is found on the LAN (src/discovery/find.ts).
  if (args.insecure) throw usage('--insecure needs --to HOST: only a code tells the receiver on the LAN from anyone else');
  const seconds = args['find-timeout'];
  if (!(Number.isFinite(seconds) && seconds > 0)) throw usage(`--find-timeout must be a positive number of seconds, not ${seconds}`);
  return { findMs: Math.round(seconds * 1000) };
}

/**
 * How `ferry receive` meets its senders: its own port (--host, --port),
 * a relay (--relay, or FERRY_RELAY when neither --from, --host nor --port
 * is given), or a listening sender (--from).
 */
function receiveWay(
  args: { host?: string | undefined; port?: number | undefined; relay?: string | undefined; from?: string | undefined },
  env: Env,
): Pick<ReceiveRequest, 'host' | 'port' | 'relay' | 'from'> {
  const listens = args.host !== undefined || args.port !== undefined;
  if (args.relay !== undefined && args.from !== undefined) throw usage('--relay and --from do not go together: the sender is reached one way');
  if (listens && (args.relay !== undefined || args.from !== undefined)) throw usage(`--host and --port are where a receiver listens; with ${args.relay !== undefined ? '--relay' : '--from'} it does not`);
  if (args.from !== undefined) {
    const from = parseTarget(args.from, DEFAULT_PORT, '--from');
    if (from.port === 0) throw usage(`--from ${args.from}: port 0 cannot be dialled`);
    return { from };
  }
  const relay = listens ? undefined : relayOf(args.relay, env);
  if (relay) return { relay };
  return { port: parsePort(args.port ?? DEFAULT_PORT, '--port'), ...(args.host === undefined ? {} : { host: args.host }) };
}

/** --relay HOST[:PORT], else FERRY_RELAY; undefined when neither is set. */
function relayOf(flag: string | undefined, env: Env): { host: string; port: number } | undefined {
  const [source, text] = flag !== undefined ? ['--relay', flag] : ['FERRY_RELAY', env.FERRY_RELAY];
  if (!text) {
    if (flag !== undefined) throw usage('--relay: no host');
    return undefined;
  }
  const relay = parseTarget(text, RELAY_DEFAULT_PORT, source);
  if (relay.port === 0) throw usage(`${source} ${text}: port 0 cannot be dialled`);
  return relay;
}

/** `ferry relay`'s options (docs/protocol.md section 10.5 for what each limit does). */
function relayOptions<T>(y: Argv<T>) {
  const seconds = (ms: number): number => ms / 1000;
  return y
    .option('host', { type: 'string', describe: 'address to listen on (default: all interfaces, IPv6 and IPv4)' })
    .option('port', { alias: 'p', type: 'number', default: RELAY_DEFAULT_PORT, describe: 'port to listen on; 0 lets the OS choose' })
    .option('max-per-source', { type: 'number', default: RELAY_LIMITS.perSource, describe: 'connections one address (IPv6: one /64) may hold' })
    .option('max-connections', { type: 'number', default: RELAY_LIMITS.total, describe: 'connections in all' })
    .option('max-waiting', { type: 'number', default: RELAY_LIMITS.waiting, describe: 'connections waiting for a partner, in all' })
    .option('line-timeout', { type: 'number', default: seconds(RELAY_LIMITS.lineMs), describe: 'seconds a client has to send its request line' })
    .option('wait-timeout', { type: 'number', default: seconds(RELAY_LIMITS.waitMs), describe: 'seconds a client may wait for its partner' })
    .option('grace', { type: 'number', default: seconds(RELAY_LIMITS.graceMs), describe: "seconds a nameplate stays held after its room's last connection closed" })
    .option('pair-idle', { type: 'number', default: seconds(RELAY_LIMITS.pairIdleMs), describe: 'seconds a pair may pass no byte before it is closed' })
    .option('max-pair-bytes', { type: 'string', describe: 'bytes a pair may forward, both ways together (K, M, G: 1K = 1024; default: no limit); --limit-rate: bytes per second per pair' });
}

function relayRequest(args: {
  code?: string | undefined;
  insecure: boolean;
  host?: string | undefined;
  port: number;
  'max-per-source': number;
  'max-connections': number;
  'max-waiting': number;
  'line-timeout': number;
  'wait-timeout': number;
  grace: number;
  'pair-idle': number;
  'max-pair-bytes'?: string | undefined;
  'limit-rate'?: string | undefined;
}): RelayRequest {
  const count = (flag: string, n: number): number => {
    if (!(Number.isSafeInteger(n) && n > 0)) throw usage(`--${flag} must be a whole number above 0, not ${n}`);
    return n;
  };
  const ms = (flag: string, s: number): number => {
    if (!(Number.isFinite(s) && s > 0)) throw usage(`--${flag} must be a positive number of seconds, not ${s}`);
    return Math.round(s * 1000);
  };
  if (args.code !== undefined || args.insecure) throw usage('a relay takes no --code or --insecure: the two peers check the code end to end through it');
  const text = args['max-pair-bytes'];
  const pairBytes = text === undefined ? undefined : parseRate(text);
  if (text !== undefined && (pairBytes === undefined || /\/s$/i.test(text))) throw usage(`--max-pair-bytes ${text}: expected a number of bytes, as 1048576, 500M or 2G`);
  const pairRate = limitRateOf(args['limit-rate']);
  return {
    port: parsePort(args.port, '--port'),
    ...(args.host === undefined ? {} : { host: args.host }),
    limits: {
      perSource: count('max-per-source', args['max-per-source']),
      total: count('max-connections', args['max-connections']),
      waiting: count('max-waiting', args['max-waiting']),
      lineMs: ms('line-timeout', args['line-timeout']),
      waitMs: ms('wait-timeout', args['wait-timeout']),
      graceMs: ms('grace', args.grace),
      pairIdleMs: ms('pair-idle', args['pair-idle']),
      ...(pairBytes === undefined ? {} : { pairBytes }),
      ...(pairRate === undefined ? {} : { pairRate }),
    },
  };
}

/** --limit-rate RATE as bytes per second (binary suffixes: 1K = 1024), or undefined when not given. */
function limitRateOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const rate = parseRate(text);
  if (rate === undefined) throw usage(`--limit-rate ${text}: expected bytes per second, as 65536, 500K, 1.5M or 2G`);
  if (rate < MIN_RATE) throw usage(`--limit-rate ${text}: at least 16K (${MIN_RATE} bytes per second)`);
  return rate;
}

function usage(message: string): FerryError {
  return new FerryError('ERR_USAGE', message);
}

/**
 * --code, else FERRY_CODE (so the code need not be in argv, which other local
 * users can read), in its canonical spelling; none with --insecure. A code
 * that is not one is refused here, saying which of the two it came from.
 */
function codeOf(args: { code?: string | undefined; insecure: boolean }, env: Env): string | undefined {
  if (args.insecure) {
    if (args.code !== undefined) throw usage('--code and --insecure do not go together');
    return undefined;
  }
  // Empty means unset: `--code "$CODE"` with CODE unset must not pass as a code.
  const [source, code] = args.code ? ['--code', args.code] : ['FERRY_CODE', env.FERRY_CODE];
  if (!code) return undefined;
  try {
    return checkCode(code);
  } catch (err) {
    throw usage(`${source}: ${(err as Error).message}`);
  }
}

function timeoutMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) throw usage(`--timeout must be a positive number of seconds, not ${seconds}`);
  return Math.round(seconds * 1000);
}

/** Parses HOST, HOST:PORT, [IPV6]:PORT or a bare IPv6 address; `what` names the flag in errors. */
export function parseTarget(to: string, defaultPort: number = DEFAULT_PORT, what = '--to'): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(to);
  let host: string;
  let port: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
  } else if (to.startsWith('[')) {
    // Not a bare IPv6 address either: `[::1]:x` would otherwise go to DNS as a host name.
    throw usage(`${what} ${to}: expected [IPV6]:PORT`);
  } else if ((to.match(/:/g) ?? []).length > 1) {
    host = to; // a bare IPv6 address, no port
  } else {
    const colon = to.lastIndexOf(':');
    host = colon === -1 ? to : to.slice(0, colon);
    port = colon === -1 ? undefined : to.slice(colon + 1);
  }
  if (host === '') throw usage(`${what} ${to}: no host`);
  return { host, port: port === undefined ? defaultPort : parsePort(port, `${what} ${to}`) };
}

function parsePort(value: string | number, what: string): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw usage(`${what}: port must be 0 to 65535`);
  return n;
}

/**
 * yargs drops a lone '-' from positionals; it stands for standard input, so
 * it is carried through parsing under another spelling and restored.
 */
const STDIN_ARG = '\u0000stdin';
const fromArg = (value: string): string => (value === STDIN_ARG ? '-' : value);
