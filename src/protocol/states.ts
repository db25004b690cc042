/**
 * Which frames each side may receive in each of its states: the tables of
 * docs/protocol.md, section 4, as data. Both sides' waits name a state from
 * here, and test/states.test.ts compares these tables with the document.
 *
 * ABORT is allowed in every state of both sides; HEARTBEAT in every state
 * of the sender. Neither is listed below.
 */
import { FrameType } from './constants.js';
import type { ControlFrame } from './messages.js';

/** What a receiver may be sent, by state. */
export const RECEIVER_STATES = {
  /** Awaits the sender's HELLO. A PAKE here (a sender with a code, at an --insecure receiver) is answered ERR_INSECURE_MISMATCH. */
  HANDSHAKE: [FrameType.Hello, FrameType.Pake],
  /** Between files: the next OFFER, or BYE. */
  IDLE: [FrameType.Offer, FrameType.Bye],
  /** After an ACCEPT with an offset: the sender says where its DATA starts. */
  ACCEPTED: [FrameType.Resume],
  /** A file's content (ZDATA only where negotiated in HELLO), then its END. */
  RECEIVING: [FrameType.Data, FrameType.ZData, FrameType.End],
} as const satisfies Record<string, readonly FrameType[]>;

/** What a sender may be sent, by state. */
export const SENDER_STATES = {
  /** Awaits the receiver's HELLO. A PAKE here (a peer that wants a code, answering a plaintext HELLO) is ERR_INSECURE_MISMATCH. */
  HANDSHAKE: [FrameType.Hello, FrameType.Pake],
  /** Between files, nothing due: the receiver must say nothing (a VERDICT now answers no offer). */
  IDLE: [],
  /** Between files while eager offers (and folders) await their VERDICTs, which come in offer order. */
  EAGER: [FrameType.Verdict],
  /** Awaits ACCEPT or REFUSE for a non-eager OFFER. */
  OFFERED: [FrameType.Accept, FrameType.Refuse],
  /** From ACCEPT (or RESUME) until END: nothing but HEARTBEAT. */
  SENDING: [],
  /** After END: the file's VERDICT. */
  AWAIT_VERDICT: [FrameType.Verdict],
} as const satisfies Record<string, readonly FrameType[]>;

export type StateTable = typeof RECEIVER_STATES | typeof SENDER_STATES;
export type ReceiverState = keyof typeof RECEIVER_STATES;
export type SenderState = keyof typeof SENDER_STATES;

/** The control frame a wait in state `S` of table `T` can resolve with. */
export type FrameIn<T, S extends keyof T> = Extract<ControlFrame, { type: T[S] extends readonly (infer F)[] ? F : never }>;

/** True when `type` may arrive in `state` (ABORT always may; HEARTBEAT is the connection's business). */
export function allowedIn(table: StateTable, state: string, type: number): boolean {
  if (type === FrameType.Abort) return true;
  const allowed: readonly number[] | undefined = (table as Record<string, readonly number[]>)[state];
  return allowed !== undefined && allowed.includes(type);
}
