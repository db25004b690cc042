/**
 * `ferry relay` as users run it: the real CLI as a child process on
 * loopback, port 0, with raw clients pairing through it.
 */
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { RECEIVER_SIDE, SENDER_SIDE, allocateLine, relayLine, roomToken } from '../src/relay/wire.js';
import { ferry, run } from './support/cli.js';
import { rawClient, until } from './support/relay-raw.js';

async function relay(extra: string[] = []): Promise<ReturnType<typeof ferry> & { port: number }> {
  const proc = ferry(['relay', '--json', '--host', '127.0.0.1', '--port', '0', ...extra]);
  const listening = await proc.waitFor((e) => e.event === 'listening');
  expect(listening).toEqual({ event: 'listening', host: '127.0.0.1', port: expect.any(Number) });
  return Object.assign(proc, { port: listening.port as number });
}

describe('ferry relay', () => {
  test('--json: listening, then a line per pairing; a receiver that allocates is found by its nameplate; SIGTERM exits 143', async () => {
    const r = await relay();
    const rx = await rawClient(r.port);
    rx.write(allocateLine(RECEIVER_SIDE));
    await rx.waitForBytes('nameplate 1\n'.length);
    expect(rx.text).toBe('nameplate 1\n');
    const tx = await rawClient(r.port);
    tx.write(relayLine(roomToken(1), SENDER_SIDE));
    await tx.waitForBytes(3);
    tx.write('through the relay');
    expect((await rx.waitForBytes(15 + 17)).toString()).toBe('nameplate 1\nok\nthrough the relay');
    const paired = await r.waitFor((e) => e.event === 'paired');
    expect(paired).toMatchObject({ nameplate: 1, room: roomToken(1).slice(0, 16), sources: ['127.0.0.1', '127.0.0.1'] });
    r.child.kill('SIGTERM');
    expect(await r.exit()).toBe(143);
    // The pair was closed with the relay.
    await rx.waitForEnd();
  });

  test('a refusal is one JSON line; Ctrl-C exits 130', async () => {
    const r = await relay(['--max-per-source', '2']);
    // A pair: both sent their lines, so neither is closed to make room, and the next one is refused.
    const first = await rawClient(r.port);
    first.write(relayLine(roomToken(7), SENDER_SIDE));
    const partner = await rawClient(r.port);
    partner.write(relayLine(roomToken(7), RECEIVER_SIDE));
    await Promise.all([first.waitForBytes(3), partner.waitForBytes(3)]);
    const second = await rawClient(r.port);
    expect(await second.waitForEnd()).toBe('busy\n');
    expect(await r.waitFor((e) => e.event === 'refused')).toMatchObject({ reason: 'per-source', source: '127.0.0.1' });
    first.close();
    r.child.kill('SIGINT');
    expect(await r.exit()).toBe(130);
  });

  test('without --json: one line saying where it listens', async () => {
    const proc = ferry(['relay', '--host', '127.0.0.1', '--port', '0']);
    await until(() => proc.lines.length > 0, 'the listening line');
    expect(proc.lines[0]).toMatch(/^ferry relay: listening on 127\.0\.0\.1:\d+$/);
    proc.child.kill('SIGTERM');
    expect(await proc.exit()).toBe(143);
  });

  test('a port in use: one line and exit 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const result = await run(['relay', '--host', '127.0.0.1', '--port', String(port)]);
    taken.close();
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([`ferry: cannot listen on 127.0.0.1 port ${port}: address already in use`]);
  });

  test.each([
    [['--max-per-source', '0'], /--max-per-source must be a whole number/],
    [['--wait-timeout', '-1'], /--wait-timeout must be a positive number of seconds/],
    [['--max-pair-bytes', 'lots'], /--max-pair-bytes lots: expected a number of bytes/],
    [['--code', '7-orbit-velvet-cactus'], /a relay takes no --code/],
    [['--port', '70000'], /port must be 0 to 65535/],
  ])('bad usage %j: exit 2 and one line', async (args, message) => {
    const result = await run(['relay', '--host', '127.0.0.1', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
