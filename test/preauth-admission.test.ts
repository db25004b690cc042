/** The admission budget for unauthenticated connections (src/receiver/admission.ts), in memory, with fake timers. */
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { ADMISSION_LIMITS, Admission, type Ticket } from '../src/receiver/admission.js';

beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

function setup(): { admission: Admission; lines: string[]; dropped: string[]; admit(address: string, label?: string): Ticket | null } {
  const lines: string[] = [];
  const dropped: string[] = [];
  const admission = new Admission((kind, message) => lines.push(`${kind}: ${message}`));
  let n = 0;
  return {
    admission,
    lines,
    dropped,
    admit: (address, label = `${address}#${n++}`) => admission.admit(address, () => dropped.push(label)),
  };
}

describe('admission of unauthenticated connections', () => {
  test('a full source makes room by closing its own oldest silent connection; one that spoke ferry is kept', () => {
    const { admit, dropped, admission } = setup();
    const tickets = Array.from({ length: ADMISSION_LIMITS.perSource }, (_, i) => admit('10.0.0.2', `a${i}`)!);
    tickets[0]!.framed();
    expect(admit('10.0.0.2', 'newcomer')).not.toBeNull();
    expect(dropped).toEqual(['a1']);
    expect(admission.size).toBe(ADMISSION_LIMITS.perSource);
  });

  test('IPv6 addresses of one /64 are one source', () => {
    const { admit, dropped } = setup();
    for (let i = 0; i < ADMISSION_LIMITS.perSource; i++) admit(`2001:db8:1:2::${i + 1}`, `v6-${i}`);
    admit('2001:db8:1:2:ffff:ffff:ffff:ffff', 'same /64');
    expect(dropped).toEqual(['v6-0']);
    admit('2001:db8:1:3::1', 'next /64');
    expect(dropped).toEqual(['v6-0']);
  });

  test('a full budget closes the oldest silent connection of the source holding the most, not the oldest overall', () => {
    const { admit, dropped } = setup();
    const { total, perSource } = ADMISSION_LIMITS;
    // total - perSource connections from sources holding 2 each, then perSource from one source.
    for (let i = 0; i < total - perSource; i++) admit(`10.1.${Math.floor(i / 2 / 250)}.${(Math.floor(i / 2) % 250) + 1}`, `small${i}`);
    for (let i = 0; i < perSource; i++) admit('10.2.0.1', `big${i}`);
    expect(admit('192.0.2.1', 'honest')).not.toBeNull();
    expect(dropped).toEqual(['big0']);
  });

  test('one lingering after a failed handshake goes first, then silent ones, then waits for a token', () => {
    const { admit, dropped, lines } = setup();
    const { total, perSource } = ADMISSION_LIMITS;
    const tickets: Ticket[] = [];
    for (let i = 0; i < total; i++) tickets.push(admit(`10.3.0.${Math.floor(i / perSource) + 1}`, `t${i}`)!);
    for (const t of tickets) t.framed();
    tickets[50]!.ending();
    tickets[60]!.waiting(true);
    tickets[70]!.waiting(true);
    tickets[70]!.waiting(false);
    expect(admit('192.0.2.1', 'first')).not.toBeNull();
    expect(dropped).toEqual(['t50']);
    // 'first' has not spoken yet: it goes before any wait.
    const second = admit('192.0.2.2', 'second');
    expect(dropped).toEqual(['t50', 'first']);
    second!.framed();
    lines.length = 0;
    // Nothing silent left: the wait goes (t70 stopped waiting and is kept).
    expect(admit('192.0.2.3', 'third')).not.toBeNull();
    expect(dropped).toEqual(['t50', 'first', 't60']);
    expect(lines).toEqual([expect.stringMatching(/^evicted: .*waiting for a token/)]);
  });

  test('when every slot has spoken ferry and none waits, the newcomer is refused', () => {
    const { admit, lines } = setup();
    const { total, perSource } = ADMISSION_LIMITS;
    for (let i = 0; i < total; i++) admit(`10.4.0.${Math.floor(i / perSource) + 1}`)!.framed();
    expect(admit('192.0.2.9', 'refused')).toBeNull();
    expect(lines).toEqual([expect.stringMatching(/^refused: /)]);
  });

  test('no whole frame within the first-frame deadline: closed; a connection that framed in time is kept', async () => {
    const { admit, dropped } = setup();
    admit('10.0.0.5', 'silent');
    admit('10.0.0.6', 'spoke')!.framed();
    await vi.advanceTimersByTimeAsync(ADMISSION_LIMITS.firstFrameMs - 1);
    expect(dropped).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(dropped).toEqual(['silent']);
  });

  test('authenticated connections leave the budget; dropped ones say so', () => {
    const { admit, admission } = setup();
    const t = admit('10.0.0.7')!;
    expect(admission.size).toBe(1);
    t.authenticated();
    expect(t.isAuthenticated).toBe(true);
    expect(admission.size).toBe(0);
    expect(t.dropped).toBe(false);
  });

  test('log lines are rate-limited per kind: a flood of evictions is 5 lines per 10 s, then a count of the rest', async () => {
    const { admit, lines } = setup();
    const { perSource } = ADMISSION_LIMITS;
    for (let i = 0; i < perSource + 100; i++) admit('10.0.0.9');
    expect(lines).toHaveLength(5);
    // Meanwhile those left are closed by the first-frame deadline: a kind of its own, 5 lines too.
    await vi.advanceTimersByTimeAsync(10_000);
    expect(lines.filter((l) => l.startsWith('deadline: '))).toHaveLength(5);
    for (let i = 0; i < perSource + 1; i++) admit('10.0.0.9');
    const evicted = lines.filter((l) => l.startsWith('evicted: '));
    expect(evicted).toHaveLength(6);
    // 100 evictions in the first interval, 5 shown.
    expect(evicted[5]).toMatch(/and 95 more like it/);
  });
});
