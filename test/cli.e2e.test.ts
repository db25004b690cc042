/**
 * The real CLI, as users and scripts run it: child processes over real
 * sockets on port 0, in temp folders.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PROTOCOL_VERSION } from '../src/protocol/constants.js';
import { CLI, TEST_CODE, ferry, receiver, run } from './support/cli.js';
import { fingerprint, listing, partials, tempDir, visible, writeSample } from './support/files.js';
import { closedPort } from './support/ports.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

describe('ferry send | ferry receive', () => {
  test('sizes 0, 1, chunk-1, chunk, chunk+1, several MiB, unicode and space names; JSON events on both sides', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const specs: Array<[string, number]> = [
      ['empty', 0],
      ['one', 1],
      ['chunk-1', MiB - 1],
      ['chunk', MiB],
      ['chunk+1', MiB + 1],
      ['several.bin', 6 * MiB + 5],
      ['naïve café — résumé.txt', 1000],
      ['with spaces in name.txt', 10],
      ['日本語.txt', 77],
    ];
    const files = await Promise.all(specs.map(([name, size]) => writeSample(src, name, size)));
    const rx = await receiver(dst, ['--once']);
    const tx = await run(['send', ...files.map((f) => f.path), '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code, tx.stderr).toBe(0);
    expect(await rx.exit()).toBe(0);

    expect(await listing(dst)).toEqual(specs.map(([n]) => n).sort());
    for (const f of files) {
      expect(fingerprint(await readFile(join(dst, f.path.slice(src.length + 1))))).toEqual(fingerprint(f.content));
    }
    const sent = tx.events.filter((e) => e.event === 'sent');
    const received = rx.events.filter((e) => e.event === 'received');
    expect(sent.map((e) => e.name)).toEqual(specs.map(([n]) => n));
    expect(received.map((e) => e.name)).toEqual(specs.map(([n]) => n));
    for (let i = 0; i < specs.length; i++) {
      expect(sent[i]).toMatchObject({ bytes: specs[i]![1], hash: { algorithm: 'blake3' } });
      expect(received[i]).toMatchObject({ bytes: specs[i]![1], path: join(dst, specs[i]![0]), hash: sent[i]!.hash });
      expect(typeof received[i]!.seconds).toBe('number');
    }
    expect(rx.events[0]).toEqual({ event: 'listening', host: '127.0.0.1', port: rx.port, code: TEST_CODE, announcing: true });
  });

  test('without --json and not on a terminal: one summary line per file, no bar; --quiet prints nothing', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const a = await writeSample(src, 'a.txt', 10);
    const b = await writeSample(src, 'b.txt', 20);
    const rx = await receiver(dst);
    const tx = await run(['send', a.path, b.path, '--to', `127.0.0.1:${rx.port}`]);
    expect(tx.code).toBe(0);
    expect(tx.stdout.split('\n')).toEqual([
      expect.stringMatching(/^sent a\.txt: 10 B, .* verified by the receiver$/),
      expect.stringMatching(/^sent b\.txt: 20 B, .* verified by the receiver$/),
      expect.stringMatching(/^sent 2 files, 30 B in .* all verified$/),
    ]);
    expect(tx.stderr).toBe('');
    await writeSample(src, 'c.txt', 5);
    const quiet = await run(['send', join(src, 'c.txt'), '--to', `127.0.0.1:${rx.port}`, '--quiet']);
    expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
    rx.child.kill('SIGINT');
    expect(await rx.exit()).toBe(130);
  });

  test('the human receiver prints its chosen port', async () => {
    const dst = await tempDir();
    const rx = ferry(['receive', '--port', '0', '--host', '127.0.0.1', '--dir', dst]);
    const deadline = Date.now() + 10_000;
    while (rx.lines.length === 0 && Date.now() < deadline) await new Promise((r) => rx.child.stdout!.once('data', r));
    expect(rx.lines[0]).toMatch(/^ferry: listening on 127\.0\.0\.1 port \d+$/);
    rx.child.kill('SIGTERM');
    expect(await rx.exit()).toBe(143);
  });

  test('an existing name is refused: exit 4 on both sides (--once), the old file untouched', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'keep.txt', 100);
    await writeFile(join(dst, 'keep.txt'), 'original');
    const rx = await receiver(dst, ['--once']);
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`, '--json']);
    expect(tx.code).toBe(4);
    expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_EXISTS', exitCode: 4, name: 'keep.txt' }));
    expect(tx.stderr).toMatch(/^ferry: keep\.txt: refused by the receiver: .*exists/m);
    expect(await rx.exit()).toBe(4);
    expect(await readFile(join(dst, 'keep.txt'), 'utf8')).toBe('original');
    expect(await listing(dst)).toEqual(['keep.txt']);
  });

  test('--overwrite replaces an existing file', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'replace.txt', 100);
    await writeFile(join(dst, 'replace.txt'), 'old');
    const rx = await receiver(dst, ['--once', '--overwrite']);
    expect((await run(['send', file.path, '--to', `127.0.0.1:${rx.port}`])).code).toBe(0);
    expect(await rx.exit()).toBe(0);
    expect(fingerprint(await readFile(join(dst, 'replace.txt')))).toEqual(fingerprint(file.content));
  });
});

describe('about ferry itself', () => {
  /** `ferry ARGS` run from `cwd`, with a deadline. */
  function inFolder(cwd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, timeout: 10_000 }, (err, stdout) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ code: err ? (err.code as number) : 0, stdout });
      });
    });
  }

  test('--version from any folder: the package version and the protocol', async () => {
    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    // From a folder with no package.json of its own (yargs's own lookup said "unknown" there).
    expect(await inFolder(await tempDir(), ['--version'])).toEqual({ code: 0, stdout: `ferry ${version} (protocol ${PROTOCOL_VERSION})\n` });
  });

  test('`ferry completion` prints a script the shell runs, and the completions it asks for', async () => {
    const dir = await tempDir();
    const script = await inFolder(dir, ['completion'], { SHELL: '/bin/bash', ZSH_NAME: '' });
    expect(script.code).toBe(0);
    expect(script.stdout).toMatch(/ferry --get-yargs-completions/);
    expect(await inFolder(dir, ['--get-yargs-completions', 'ferry', 'rec'], { SHELL: '/bin/bash' })).toEqual({ code: 0, stdout: 'receive\n' });
  });
});

describe('integrity and failures', () => {
  test('a byte flipped in transit (--insecure): exit 3 on both sides, nothing saved', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'flipped.bin', 3 * MiB);
    // Plaintext, so the flip reaches ferry's digest; encrypted, TLS refuses it first (test/secure.cli.e2e.test.ts).
    const rx = await receiver(dst, ['--once', '--insecure']);
    // Offset 2 MiB of the sender's stream falls inside the data of the file.
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { flipAt: 2 * MiB, flipMask: 0x01 });
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json', '--insecure']);
      expect(tx.code).toBe(3);
      expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_HASH_MISMATCH', exitCode: 3 }));
      expect(await rx.exit()).toBe(3);
      expect(rx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_HASH_MISMATCH', name: 'flipped.bin' }));
      expect(await listing(dst)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  test('a connection cut mid-file (--retries 0): exit 1 on both sides, no visible file, the partial kept for a resume', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'cut.bin', 4 * MiB);
    const rx = await receiver(dst, ['--once']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { cutAfter: 2 * MiB + 123 });
    try {
      const tx = await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      expect(tx.code).toBe(1);
      expect(tx.events).toContainEqual(expect.objectContaining({ event: 'error', exitCode: 1, name: 'cut.bin' }));
      expect(tx.events.at(-1)).toMatchObject({ event: 'summary', side: 'send', files: 0, failures: 1, exitCode: 1 });
      expect(await rx.exit()).toBe(1);
      expect(rx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_TRUNCATED', name: 'cut.bin' }));
      expect(await visible(dst)).toEqual([]);
      expect(await partials(dst)).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  test('the stream sliced into random small writes still arrives whole', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'sliced.bin', 3000);
    const rx = await receiver(dst, ['--once']);
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { slice: { mode: 'random', seed: 42, maxSlice: 7 } });
    try {
      expect((await run(['send', file.path, '--to', `127.0.0.1:${proxy.port}`])).code).toBe(0);
      expect(await rx.exit()).toBe(0);
      expect(fingerprint(await readFile(join(dst, 'sliced.bin')))).toEqual(fingerprint(file.content));
    } finally {
      await proxy.close();
    }
  });

  test('a closed port: exit 1 and one clear line', async () => {
    const src = await tempDir();
    const file = await writeSample(src, 'x.txt', 1);
    const port = await closedPort();
    const tx = await run(['send', file.path, '--to', `127.0.0.1:${port}`]);
    expect(tx.code).toBe(1);
    expect(tx.stderr).toBe(`ferry: cannot connect to 127.0.0.1:${port}: connection refused (is \`ferry receive\` running there?)\n`);
  });

  test('a missing file: exit 2, one line, nothing sent', async () => {
    const tx = await run(['send', '/nonexistent/ferry.txt', '--to', '127.0.0.1:9']);
    expect(tx.code).toBe(2);
    expect(tx.stderr).toBe('ferry: /nonexistent/ferry.txt: no such file or folder\n');
  });

  test.each([
    [['send', 'x', '--insecure'], /--insecure needs --to HOST/],
    [['send', '--to', 'h'], /^ferry: name at least one FILE to send$/m],
    [['send', 'x', '--to', 'host:99999'], /port must be 0 to 65535/],
    [['receive', '--port', 'abc'], /port/],
    [['receive', '--bogus'], /Unknown argument: bogus/],
    [['receive', '--dir', '/nonexistent/ferry'], /no such directory/],
    [[], /name a command/],
  ])('usage error %j: exit 2, no stack trace', async (args, message) => {
    const r = await run(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('a port already in use: exit 1 with the reason', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = await run(['receive', '--host', '127.0.0.1', '--port', String(port), '--dir', await tempDir()]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`ferry: cannot listen on 127.0.0.1 port ${port}: address already in use\n`);
    } finally {
      blocker.close();
    }
  });

  test('SIGINT during a transfer: the sender exits 130, the receiver reports the interruption and keeps only the hidden partial', async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const file = await writeSample(src, 'interrupted.bin', 8 * MiB);
    const rx = await receiver(dst, ['--once']);
    // Throttled so the transfer is surely under way when the signal lands.
    const proxy = await startProxy({ host: '127.0.0.1', port: rx.port }, { bytesPerSecond: 2 * MiB });
    try {
      const tx = ferry(['send', file.path, '--to', `127.0.0.1:${proxy.port}`, '--json']);
      await tx.waitFor((e) => e.event === 'start');
      tx.child.kill('SIGINT');
      expect(await tx.exit()).toBe(130);
      expect(await rx.exit()).toBe(1);
      expect(rx.events).toContainEqual(expect.objectContaining({ event: 'error', code: 'ERR_INTERRUPTED', name: 'interrupted.bin' }));
      expect(await visible(dst)).toEqual([]);
      expect(await partials(dst)).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});
