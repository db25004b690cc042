/**
 * Connection.expect(state) follows the state tables of src/protocol/states.ts
 * for every state of both sides and every control frame: what the table
 * allows is handed over, anything else is ERR_UNEXPECTED_FRAME with an
 * ABORT to the peer. (HEARTBEAT, ABORT and DATA have their own rules, tested
 * in connection.test.ts.)
 */
import { afterEach, describe, expect, test } from 'vitest';
import { Connection } from '../../src/connection.js';
import { FRAME_NAMES, FrameType } from '../../src/protocol/constants.js';
import type { FerryError } from '../../src/protocol/errors.js';
import * as m from '../../src/protocol/messages.js';
import { RECEIVER_STATES, SENDER_STATES, type StateTable } from '../../src/protocol/states.js';
import { asSocket, duplexPair } from '../support/duplex-pair.js';
import { WirePeer, within } from '../support/wire-peer.js';

const DIGEST = Buffer.alloc(32, 1);

/** One well-formed frame of each control type a state table can name. */
const SAMPLES: ReadonlyArray<[FrameType, Buffer]> = [
  [FrameType.Hello, m.encodeHello([1])],
  [FrameType.Bye, m.encodeBye()],
  [FrameType.Pake, m.encodeFrame(FrameType.Pake, Buffer.alloc(65, 4))],
  [FrameType.Confirm, m.encodeFrame(FrameType.Confirm, Buffer.alloc(32, 5))],
  [FrameType.Secure, m.encodeFrame(FrameType.Secure)],
  [FrameType.Offer, m.encodeOffer({ size: 1, mtimeMs: 0, mode: 0o644, algorithm: 1, name: 'f' })],
  [FrameType.Accept, m.encodeAccept(0)],
  [FrameType.Refuse, m.encodeRefuse('ERR_EXISTS', 'exists')],
  [FrameType.Resume, m.encodeResume(0)],
  [FrameType.End, m.encodeEnd(DIGEST, DIGEST)],
  [FrameType.Verdict, m.encodeVerdict('OK', DIGEST)],
];

const open: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const c of open.splice(0)) c.destroy();
});

function cases(name: string, table: StateTable): Array<[string, string, string, FrameType, Buffer, boolean]> {
  return Object.entries(table).flatMap(([state, allowed]) =>
    SAMPLES.map(([type, bytes]): [string, string, string, FrameType, Buffer, boolean] => [name, state, FRAME_NAMES.get(type)!, type, bytes, (allowed as readonly number[]).includes(type)]),
  );
}

describe.each([
  ['receiver', RECEIVER_STATES],
  ['sender', SENDER_STATES],
] as const)('the %s', (name, table) => {
  test.each(cases(name, table))('%s in %s, %s arrives', async (_side, state, _frame, type, bytes, allowed) => {
    const [mine, theirs] = duplexPair();
    const conn = new Connection(asSocket(mine), 10_000, table as StateTable);
    open.push(conn);
    const peer = new WirePeer(theirs);
    peer.write(bytes);
    const outcome = await within(
      (conn.expect as (s: string) => Promise<m.ControlFrame>)(state).then(
        (frame) => ({ type: frame.type }),
        (err: FerryError) => ({ code: err.code }),
      ),
      `expect('${state}')`,
    );
    if (allowed) {
      expect(outcome).toEqual({ type });
      expect(peer.frames).toEqual([]);
    } else {
      expect(outcome).toEqual({ code: 'ERR_UNEXPECTED_FRAME' });
      expect(await peer.frame(0)).toMatchObject({ type: FrameType.Abort, code: 'ERR_UNEXPECTED_FRAME' });
    }
  });
});
