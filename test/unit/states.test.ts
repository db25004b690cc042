/** The state tables in src/protocol/states.ts are the tables of docs/protocol.md, section 4. */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { FRAME_NAMES } from '../../src/protocol/constants.js';
import { RECEIVER_STATES, SENDER_STATES, allowedIn } from '../../src/protocol/states.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

/** state -> allowed frame names, from the markdown table that follows `heading`. */
function tableAfter(heading: string): Map<string, string[]> {
  const start = doc.indexOf(heading);
  expect(start, `docs/protocol.md has "${heading}"`).toBeGreaterThan(-1);
  const rows = new Map<string, string[]>();
  for (const line of doc.slice(start).split('\n').slice(1)) {
    if (line.trim() === '') {
      if (rows.size > 0) break;
      continue;
    }
    const cells = line.split('|').map((c) => c.trim());
    const state = /^`?([A-Za-z_]+)`?$/.exec(cells[1] ?? '')?.[1];
    if (!state || state === 'state') continue;
    rows.set(state, [...(cells[2] ?? '').matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!));
  }
  return rows;
}

function names(table: Record<string, readonly number[]>): Map<string, string[]> {
  return new Map(Object.entries(table).map(([state, types]) => [state, types.map((t) => FRAME_NAMES.get(t)!)]));
}

describe('docs/protocol.md section 4 and src/protocol/states.ts', () => {
  test('the receiver table', () => {
    const documented = tableAfter('Receiver states:');
    expect(documented.get('any')).toEqual(['ABORT']);
    documented.delete('any');
    expect(documented).toEqual(names(RECEIVER_STATES));
  });

  test('the sender table', () => {
    const documented = tableAfter('Sender states:');
    expect(documented.get('any')).toEqual(['ABORT', 'HEARTBEAT']);
    documented.delete('any');
    expect(documented).toEqual(names(SENDER_STATES));
  });

  test('ABORT is allowed in every state; a frame of another state is not', () => {
    expect(allowedIn(SENDER_STATES, 'SENDING', 0x00ff)).toBe(true);
    expect(allowedIn(SENDER_STATES, 'SENDING', 0x0022)).toBe(false);
    expect(allowedIn(RECEIVER_STATES, 'IDLE', 0x0021)).toBe(false);
    expect(allowedIn(RECEIVER_STATES, 'NOSUCH', 0x0010)).toBe(false);
  });
});
