/** The relay's lines (src/relay/wire.ts) against what docs/protocol.md section 10 says of them. */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { RECEIVER_SIDE, RELAY_MAX_LINE, SENDER_SIDE, allocateLine, nameplateLine, parseNameplate, parseRelayRequest, relayLine, roomToken } from '../../src/relay/wire.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');

describe('relay lines', () => {
  test("the document's roomToken(1), sides and line lengths are the code's", () => {
    expect(doc).toContain(`roomToken(1) = ${roomToken(1)}`);
    expect(doc).toContain(`\`SENDER_SIDE\` =\n\`${SENDER_SIDE}\``);
    expect(doc).toContain(`\`RECEIVER_SIDE\` =\n\`${RECEIVER_SIDE}\``);
    expect(doc).toMatch(new RegExp(`please relay TOKEN for side SIDE\\\\n\` \\| ${relayLine(roomToken(1), SENDER_SIDE).length} \\|`));
    expect(doc).toMatch(new RegExp(`please allocate for side SIDE\\\\n\` \\| ${allocateLine(RECEIVER_SIDE).length} \\|`));
    expect(relayLine(roomToken(9999), SENDER_SIDE).length).toBeLessThanOrEqual(RELAY_MAX_LINE);
  });

  test('each line parses back; near misses do not', () => {
    const token = roomToken(7);
    expect(parseRelayRequest(relayLine(token, SENDER_SIDE))).toEqual({ kind: 'relay', token, side: SENDER_SIDE });
    expect(parseRelayRequest(allocateLine(RECEIVER_SIDE))).toEqual({ kind: 'allocate', side: RECEIVER_SIDE });
    for (const bad of [relayLine(token, SENDER_SIDE).trimEnd(), `please relay ${token}\n`, relayLine(token.slice(1), SENDER_SIDE), ` ${allocateLine(SENDER_SIDE)}`, allocateLine('6665727279736E64')]) {
      expect(parseRelayRequest(bad), JSON.stringify(bad)).toBeNull();
    }
    expect(parseNameplate(nameplateLine(9999))).toBe(9999);
    for (const bad of ['nameplate 0\n', 'nameplate 012\n', 'nameplate 10000\n', 'nameplate 5']) expect(parseNameplate(bad)).toBeNull();
  });
});
