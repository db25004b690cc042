/** Argument parsing (src/cli.ts) without running anything: what each command line asks for, or the usage error it is. */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { parseArgs, parseTarget, type Parsed } from '../../src/cli.js';
import { PROTOCOL_VERSION } from '../../src/protocol/constants.js';
import type { FerryError } from '../../src/protocol/errors.js';

const CODE = '7-orbit-velvet-cactus';

function usageError(argv: string[], env: Record<string, string> = {}): FerryError {
  try {
    const parsed = parseArgs(argv, env);
    throw new Error(`expected a usage error, got ${JSON.stringify(parsed)}`);
  } catch (err) {
    expect((err as FerryError).code, String(err)).toBe('ERR_USAGE');
    return err as FerryError;
  }
}

function sendOf(argv: string[], env: Record<string, string> = { FERRY_CODE: CODE }): Extract<Parsed, { command: 'send' }>['options'] {
  const parsed = parseArgs(['send', ...argv], env);
  if (parsed.command !== 'send') throw new Error(`parsed as ${parsed.command}`);
  return parsed.options;
}

describe('--to', () => {
  test.each([
    ['example.org', 'example.org', 7878],
    ['example.org:9000', 'example.org', 9000],
    ['10.0.0.2:1', '10.0.0.2', 1],
    ['[::1]:9000', '::1', 9000],
    ['[fe80::1%eth0]', 'fe80::1%eth0', 7878],
    ['::1', '::1', 7878],
    ['2001:db8::7', '2001:db8::7', 7878],
    ['h:65535', 'h', 65535],
  ])('%s is host %s port %d', (to, host, port) => {
    expect(parseTarget(to)).toEqual({ host, port });
    expect(sendOf(['f', '--to', to])).toMatchObject({ host, port });
  });

  test.each(['h:99999', 'h:-1', 'h:abc', 'h:', '[::1]:x', '[::1', '[::1]9', ':80', 'h:0', 'h:1.5'])('%s is a usage error', (to) => {
    usageError(['send', 'f', '--to', to]);
  });

  test('left out with a code: the receiver is looked for on the LAN, for --find-timeout seconds (3 by default)', () => {
    expect(sendOf(['f'])).toMatchObject({ findMs: 3000, code: CODE });
    expect(sendOf(['f'])).not.toHaveProperty('host');
    expect(sendOf(['f', '--find-timeout', '0.5'])).toMatchObject({ findMs: 500 });
    for (const bad of ['0', '-1', 'abc', 'Infinity']) expect(usageError(['send', 'f', '--find-timeout', bad]).message).toMatch(/--find-timeout/);
  });

  test('left out with --insecure: a usage error (without a code nothing tells the receiver from anyone who announces)', () => {
    expect(usageError(['send', 'f', '--insecure']).message).toMatch(/--insecure needs --to/);
  });
});

describe('the files', () => {
  test('several files and folders, in order', () => {
    expect(sendOf(['a', 'dir/', 'c d', '--to', 'h']).files).toEqual(['a', 'dir/', 'c d']);
  });

  test('- is standard input, named with --name', () => {
    expect(sendOf(['-', '--name', 'log.txt', '--to', 'h'])).toMatchObject({ files: ['-'], stdinName: 'log.txt' });
    expect(sendOf(['a', '-', '--to', 'h']).files).toEqual(['a', '-']);
  });

  test('none, stdin twice, or --name without stdin: usage errors', () => {
    expect(usageError(['send', '--to', 'h']).message).toBe('name at least one FILE to send');
    usageError(['send', '-', '-', '--to', 'h']);
    expect(usageError(['send', 'a', '--name', 'x', '--to', 'h']).message).toMatch(/--name is for standard input/);
  });
});

describe('the code', () => {
  test('--code, else FERRY_CODE; --code wins', () => {
    expect(sendOf(['f', '--to', 'h', '--code', '1-apple-banana-cherry'], { FERRY_CODE: CODE }).code).toBe('1-apple-banana-cherry');
    expect(sendOf(['f', '--to', 'h'], { FERRY_CODE: CODE }).code).toBe(CODE);
  });

  test('empty counts as unset, on either side', () => {
    expect(sendOf(['f', '--to', 'h', '--code', ''], { FERRY_CODE: CODE }).code).toBe(CODE);
    expect(sendOf(['f', '--to', 'h', '--code', ''], { FERRY_CODE: '' }).code).toBeUndefined();
    expect(sendOf(['f', '--to', 'h'], {}).code).toBeUndefined();
  });

  test('--insecure takes no code: --code is refused, FERRY_CODE ignored', () => {
    expect(usageError(['send', 'f', '--to', 'h', '--insecure', '--code', CODE]).message).toMatch(/--code and --insecure/);
    expect(usageError(['receive', '--insecure', '--code', CODE]).message).toMatch(/--code and --insecure/);
    const insecure = sendOf(['f', '--to', 'h', '--insecure'], { FERRY_CODE: CODE });
    expect(insecure.insecure).toBe(true);
    expect(insecure).not.toHaveProperty('code');
  });
});

describe('a code that is not one: ERR_USAGE naming what is wrong, before anything dials', () => {
  test('one letter wrong in one word: that word, and the list word it was meant to be', () => {
    expect(usageError(['send', 'f', '--to', 'h', '--code', '7-orbit-velvet-cactos']).message).toBe(
      `--code: the code's third word, "cactos", is not in ferry's word list; did you mean "cactus"?`,
    );
    expect(usageError(['send', 'f', '--to', 'h'], { FERRY_CODE: '7-orbit-velevt-cactus' }).message).toBe(
      `FERRY_CODE: the code's second word, "velevt", is not in ferry's word list; did you mean "velvet"?`,
    );
    expect(usageError(['receive', '--code', '7-obrit-velvet-cactus']).message).toMatch(/"obrit".*did you mean "orbit"\?$/);
  });

  test('no suggestion when no list word is near, or two are equally near', () => {
    // "cane" is one letter from both "canoe" and "crane".
    expect(usageError(['send', 'f', '--to', 'h', '--code', '7-cane-velvet-xyzzy']).message).toBe(
      `--code: the code's first word, "cane", is not in ferry's word list; the code's third word, "xyzzy", is not in ferry's word list`,
    );
  });

  test.each([
    ['07-orbit-velvet-cactus', "the code's number is written without a leading zero: 7, not 07"],
    ['0-orbit-velvet-cactus', "the code's number is 1 to 9999, not 0"],
    ['10000-orbit-velvet-cactus', "the code's number is 1 to 9999, not 10000"],
    ['seven-orbit-velvet-cactus', 'the code must begin with its number (1 to 9999), not "seven"'],
    ['7-orbit-velvet', 'code must look like 7-orbit-velvet-cactus: a number and three words, not 3 parts'],
    ['7-orbit-velvet-cactus-apple', 'code must look like 7-orbit-velvet-cactus: a number and three words, not 5 parts'],
  ])('%j: %s', (code, message) => {
    expect(usageError(['send', 'f', '--to', 'h', '--code', code]).message).toBe(`--code: ${message}`);
  });

  test('any case, spaces or underscores for dashes: taken, in the one spelling both sides hash', () => {
    expect(sendOf(['f', '--to', 'h', '--code', '7 Orbit VELVET  cactus']).code).toBe(CODE);
    expect(sendOf(['f', '--to', 'h'], { FERRY_CODE: '  12_apple - Banana\tcherry\n' }).code).toBe('12-apple-banana-cherry');
    expect(parseArgs(['receive', '--code', '7 ORBIT velvet cactus'])).toMatchObject({ options: { code: CODE } });
  });
});

describe('shell completion', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  /** What `ferry --get-yargs-completions ferry WORDS...` prints: what the shell offers after `ferry WORDS`. */
  function completions(...words: string[]): string[] {
    const parsed = parseArgs(['--get-yargs-completions', 'ferry', ...words]);
    if (parsed.command !== 'print') throw new Error(`parsed as ${parsed.command}`);
    return parsed.text === '' ? [] : parsed.text.split('\n');
  }

  test('`ferry completion` prints a bash script that asks ferry for its completions (zsh from zsh)', () => {
    vi.stubEnv('SHELL', '/bin/bash');
    vi.stubEnv('ZSH_NAME', '');
    const bash = parseArgs(['completion']);
    expect(bash.command === 'print' && bash.text).toMatch(/ferry --get-yargs-completions/);
    expect(bash.command === 'print' && bash.text).toMatch(/^complete .* ferry$/m);
    vi.stubEnv('SHELL', '/usr/bin/zsh');
    const zsh = parseArgs(['completion']);
    expect(zsh.command === 'print' && zsh.text).toMatch(/^#compdef ferry$/m);
  });

  test('commands, options and choices complete from what is typed', () => {
    vi.stubEnv('SHELL', '/bin/bash');
    vi.stubEnv('ZSH_NAME', '');
    expect(completions('rec')).toEqual(['receive']);
    expect(completions('se')).toEqual(['send']);
    expect(completions('receive', '--ov')).toEqual(['--overwrite']);
    expect(completions('send', 'a.txt', '--ti')).toEqual(['--timeout']);
    expect(completions('send', '--hash', '')).toEqual(['blake3', 'sha256']);
    // Nothing fits: the shell falls back to file names.
    expect(completions('send', './fi')).toEqual([]);
  });
});

describe('numbers', () => {
  test('--timeout: seconds, to milliseconds; zero, negative or not a number refused', () => {
    expect(sendOf(['f', '--to', 'h']).timeoutMs).toBe(30_000);
    expect(sendOf(['f', '--to', 'h', '--timeout', '2.5']).timeoutMs).toBe(2500);
    for (const bad of ['0', '-1', 'abc', 'Infinity']) expect(usageError(['send', 'f', '--to', 'h', '--timeout', bad]).message).toMatch(/--timeout/);
  });

  test('--retries: a whole number, 5 by default; --retry-delay in seconds', () => {
    expect(sendOf(['f', '--to', 'h'])).toMatchObject({ retries: 5, retryDelayMs: 1000 });
    expect(sendOf(['f', '--to', 'h', '--retries', '0', '--retry-delay', '0.25'])).toMatchObject({ retries: 0, retryDelayMs: 250 });
    // Re-sending skips what the receiver holds the same, unless told not to; replacing is asked for explicitly.
    expect(sendOf(['f', '--to', 'h'])).not.toHaveProperty('skipSame');
    expect(sendOf(['f', '--to', 'h', '--skip-same'])).toMatchObject({ skipSame: true, update: false });
    expect(sendOf(['f', '--to', 'h', '--no-skip-same', '--update'])).toMatchObject({ skipSame: false, update: true });
    for (const bad of ['-1', '1.5', 'x']) expect(usageError(['send', 'f', '--to', 'h', '--retries', bad]).message).toMatch(/--retries/);
    usageError(['send', 'f', '--to', 'h', '--retry-delay', '-1']);
  });
});

describe('--wait and --limit-rate', () => {
  test('--wait: seconds to milliseconds, 0 (fail at once) by default; negative or not a number refused', () => {
    expect(sendOf(['f', '--to', 'h']).waitMs).toBe(0);
    expect(sendOf(['f', '--to', 'h', '--wait', '10']).waitMs).toBe(10_000);
    expect(sendOf(['f', '--to', 'h', '--wait', '0.25']).waitMs).toBe(250);
    for (const bad of ['-1', 'abc', 'Infinity']) expect(usageError(['send', 'f', '--to', 'h', '--wait', bad]).message).toMatch(/--wait/);
  });

  test('--wait is the sender\'s: the receiver does not know it', () => {
    usageError(['receive', '--wait', '5']);
  });

  test('--limit-rate: bytes per second, binary suffixes, on both sides; absent by default', () => {
    expect(sendOf(['f', '--to', 'h'])).not.toHaveProperty('limitRate');
    expect(sendOf(['f', '--to', 'h', '--limit-rate', '1M']).limitRate).toBe(1024 * 1024);
    expect(sendOf(['f', '--to', 'h', '--limit-rate', '500k']).limitRate).toBe(500 * 1024);
    expect(sendOf(['f', '--to', 'h', '--limit-rate', '65536']).limitRate).toBe(65536);
    const rx = parseArgs(['receive', '--code', CODE, '--limit-rate', '2G']);
    expect(rx.command === 'receive' && rx.options.limitRate).toBe(2 * 1024 ** 3);
  });

  test.each(['fast', '1T', '-1M', '', '15K', '16383'])('--limit-rate %j is a usage error (not a rate, or under 16K)', (bad) => {
    expect(usageError(['send', 'f', '--to', 'h', `--limit-rate=${bad}`]).message).toMatch(/--limit-rate/);
    expect(usageError(['receive', '--code', CODE, `--limit-rate=${bad}`]).message).toMatch(/--limit-rate/);
  });
});

describe('receive and clean', () => {
  test('the defaults, and every option', () => {
    expect(parseArgs(['receive', '--code', CODE])).toEqual({
      command: 'receive',
      output: { json: false, quiet: false, verbose: false },
      options: { dir: '.', port: 7878, once: false, overwrite: false, allowUpdate: false, allowHidden: false, timeoutMs: 30_000, fsync: true, insecure: false, stdout: false, announce: true, code: CODE },
    });
    expect(parseArgs(['receive', '--no-announce'])).toMatchObject({ options: { announce: false } });
    // An --insecure receiver never announces: no sender could tell it from anyone else.
    expect(parseArgs(['receive', '--insecure'])).toMatchObject({ options: { announce: false } });
    const all = parseArgs(['receive', '-d', '/in', '--host', '::1', '-p', '0', '--once', '--overwrite', '--allow-update', '--allow-hidden', '--max-size', '10', '--no-fsync', '--stdout', '--json', '-q', '-v'], { FERRY_CODE: CODE });
    expect(all).toMatchObject({
      command: 'receive',
      output: { json: true, quiet: true, verbose: true },
      options: { dir: '/in', host: '::1', port: 0, once: true, overwrite: true, allowUpdate: true, allowHidden: true, maxSize: 10, fsync: false, stdout: true, code: CODE },
    });
  });

  test('bad ports and sizes', () => {
    usageError(['receive', '--port', 'abc']);
    usageError(['receive', '--port', '70000']);
    usageError(['receive', '--max-size', '-5']);
  });

  test('--clean names the folder and nothing else runs', () => {
    expect(parseArgs(['receive', '--clean', '--dir', '/in'])).toEqual({ command: 'clean', output: { json: false, quiet: false, verbose: false }, dir: '/in' });
  });
});

describe('yargs', () => {
  test('unknown options, no command: usage errors', () => {
    expect(usageError(['receive', '--bogus']).message).toMatch(/Unknown argument: bogus/);
    expect(usageError([]).message).toBe('name a command: receive, send or relay');
    usageError(['fly']);
    usageError(['send', 'f', '--to', 'h', '--hash', 'md5']);
  });

  test('--help and --version are text to print, not a run', () => {
    const help = parseArgs(['--help']);
    expect(help).toMatchObject({ command: 'print' });
    expect(help.command === 'print' && help.text).toMatch(/ferry send FILE --to HOST/);
    const sendHelp = parseArgs(['send', '--help']);
    expect(sendHelp.command === 'print' && sendHelp.text).toMatch(/--retries/);
  });

  test('--version names ferry, its version from package.json, and the protocol version it speaks', () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(parseArgs(['--version'])).toEqual({ command: 'print', text: `ferry ${version} (protocol ${PROTOCOL_VERSION})` });
  });

  test('-v and --verbose, on either side of the command', () => {
    expect(parseArgs(['-v', 'receive', '--code', CODE])).toMatchObject({ output: { verbose: true } });
    expect(parseArgs(['send', 'f', '--to', 'h', '--verbose'], { FERRY_CODE: CODE })).toMatchObject({ output: { verbose: true } });
    expect(parseArgs(['send', 'f', '--to', 'h'], { FERRY_CODE: CODE })).toMatchObject({ output: { verbose: false } });
  });
});

describe('who listens and who sends: --relay, --listen, --from, FERRY_RELAY', () => {
  function receiveOf(argv: string[], env: Record<string, string> = {}): Extract<Parsed, { command: 'receive' }>['options'] {
    const parsed = parseArgs(['receive', ...argv], env);
    if (parsed.command !== 'receive') throw new Error(`parsed as ${parsed.command}`);
    return parsed.options;
  }

  test('--relay HOST takes port 7879; HOST:PORT and [IPV6]:PORT as --to does', () => {
    expect(sendOf(['f', '--relay', 'relay.example']).relay).toEqual({ host: 'relay.example', port: 7879 });
    expect(sendOf(['f', '--relay', '[::1]:9000']).relay).toEqual({ host: '::1', port: 9000 });
    expect(receiveOf(['--relay', 'r:1']).relay).toEqual({ host: 'r', port: 1 });
    expect(receiveOf(['--relay', 'r:1'])).not.toHaveProperty('port');
  });

  test('send --listen with --host and --port; those without --listen are a usage error', () => {
    expect(sendOf(['f', '--listen', '--host', '127.0.0.1', '--port', '0']).listen).toEqual({ host: '127.0.0.1', port: 0 });
    expect(sendOf(['f', '--listen']).listen).toEqual({ port: 7878 });
    expect(usageError(['send', 'f', '--to', 'h', '--port', '1']).message).toMatch(/with --listen/);
  });

  test('receive --from HOST[:PORT]', () => {
    expect(receiveOf(['--from', 'h:9', '--code', CODE]).from).toEqual({ host: 'h', port: 9 });
    expect(receiveOf(['--from', 'h', '--code', CODE]).from).toEqual({ host: 'h', port: 7878 });
  });

  test.each([
    [['send', 'f', '--to', 'h', '--relay', 'r']],
    [['send', 'f', '--to', 'h', '--listen']],
    [['send', 'f', '--relay', 'r', '--listen']],
    [['receive', '--relay', 'r', '--from', 'h']],
    [['receive', '--relay', 'r', '--port', '1']],
    [['receive', '--from', 'h', '--host', '::']],
    [['send', 'f', '--relay', 'r:0']],
    [['receive', '--from', 'h:0']],
  ])('%j: one way at a time', (argv) => {
    usageError(argv);
  });

  test('FERRY_RELAY is the default relay; an explicit --to, --listen, --from, --host or --port wins; empty is unset', () => {
    const env = { FERRY_CODE: CODE, FERRY_RELAY: 'relay.example:7000' };
    expect(sendOf(['f'], env).relay).toEqual({ host: 'relay.example', port: 7000 });
    expect(sendOf(['f', '--to', 'h'], env)).toMatchObject({ host: 'h', port: 7878 });
    expect(sendOf(['f', '--to', 'h'], env)).not.toHaveProperty('relay');
    expect(sendOf(['f', '--listen'], env)).not.toHaveProperty('relay');
    expect(sendOf(['f', '--relay', 'other'], env).relay).toEqual({ host: 'other', port: 7879 });
    expect(receiveOf([], env).relay).toEqual({ host: 'relay.example', port: 7000 });
    expect(receiveOf(['--port', '0'], env)).toMatchObject({ port: 0 });
    expect(receiveOf(['--port', '0'], env)).not.toHaveProperty('relay');
    expect(receiveOf(['--from', 'h'], env)).not.toHaveProperty('relay');
    expect(receiveOf([], { FERRY_RELAY: '' })).toMatchObject({ port: 7878 });
    // Without FERRY_RELAY a send with neither looks on the LAN.
    expect(sendOf(['f'], { FERRY_CODE: CODE, FERRY_RELAY: '' })).toHaveProperty('findMs');
  });

  test('a receiver announces itself on the LAN only where it listens: not at a relay, not dialling --from', () => {
    expect(receiveOf([]).announce).toBe(true);
    expect(receiveOf(['--relay', 'r']).announce).toBe(false);
    expect(receiveOf(['--from', 'h', '--code', CODE]).announce).toBe(false);
  });
});

describe('ferry relay', () => {
  test('defaults: port 7879, all interfaces, the documented limits; flags set each limit', () => {
    expect(parseArgs(['relay'])).toMatchObject({ command: 'relay', options: { port: 7879, limits: { perSource: 128, total: 4096, waiting: 2048, lineMs: 5000, waitMs: 600_000, graceMs: 600_000 } } });
    const parsed = parseArgs(['relay', '--port', '0', '--host', '::1', '--max-per-source', '4', '--grace', '1.5', '--max-pair-bytes', '1G', '--limit-rate', '1M', '--json']);
    expect(parsed).toMatchObject({ command: 'relay', output: { json: true }, options: { port: 0, host: '::1', limits: { perSource: 4, graceMs: 1500, pairBytes: 1024 ** 3, pairRate: 1024 ** 2 } } });
    const plain = parseArgs(['relay']);
    expect(plain.command === 'relay' && plain.options.limits).not.toHaveProperty('pairBytes');
  });

  test('a limit that is no limit, a size that is a rate, a code: usage errors', () => {
    expect(usageError(['relay', '--max-connections', '1.5']).message).toMatch(/--max-connections must be a whole number/);
    expect(usageError(['relay', '--line-timeout', '0']).message).toMatch(/--line-timeout must be a positive number/);
    expect(usageError(['relay', '--max-pair-bytes', '1M/s']).message).toMatch(/expected a number of bytes/);
    expect(usageError(['relay', '--insecure']).message).toMatch(/a relay takes no --code or --insecure/);
  });
});
