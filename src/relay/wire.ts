/**
 * The relay's line protocol (docs/protocol.md section 10): what a ferry peer
 * writes to a relay before the ferry stream, and what the relay answers.
 * Pure functions on strings: no sockets, no timers.
 *
 * The pairing line is the magic-wormhole transit relay's
 * (`please relay TOKEN for side SIDE\n`, answered `ok\n` once two
 * connections with the same TOKEN and different SIDEs are waiting), so that
 * relay serves ferry too. `please allocate for side SIDE\n` is ferry's own
 * addition: ferry's relay answers `nameplate N\n`, a number no other room
 * on that relay holds, and the connection then waits in room N.
 */
import { createHash, randomInt } from 'node:crypto';
import { CODE_LARGEST_NUMBER } from '../secure/code.js';

/** `ferry relay` listens here unless told otherwise (one above the receiver's 7878). */
export const RELAY_DEFAULT_PORT = 7879;
/** The longest line either side may send, newline included; longer is a bad handshake. */
export const RELAY_MAX_LINE = 128;
/** Nameplates are 1..NAMEPLATE_MAX: the number a code begins with, the largest secure/code.ts accepts. */
export const NAMEPLATE_MAX = CODE_LARGEST_NUMBER;

/**
 * The side names a role, not a connection: the transit relay never pairs two
 * connections of the same side, so two senders (or two receivers) waiting in
 * one room are never joined to each other. Hex of "ferrysnd" and "ferryrcv".
 */
export const SENDER_SIDE = '6665727279736e64';
export const RECEIVER_SIDE = '6665727279726376';

/** The relay's answers, each one line. */
export const RELAY_OK = 'ok\n';
export const RELAY_BAD = 'bad handshake\n';
/**
 * Bytes after the line and before `ok\n`: the transit relay's answer, kept so
 * that one client handles both relays alike.
 */
export const RELAY_IMPATIENT = 'impatient\n';
/**
 * ferry's relay only: a limit is full (connections from this source, in
 * all, waiting, or every nameplate held). Not the client's fault: it may
 * dial again later.
 */
export const RELAY_BUSY = 'busy\n';

/**
 * The room of a nameplate: SHA-256 over "ferry relay v1 nameplate " and the
 * number in decimal, as 64 lowercase hex digits. Only the public number goes
 * in, never the words: the relay learns nothing it could test a guess with.
 */
export function roomToken(nameplate: number): string {
  return createHash('sha256').update(`ferry relay v1 nameplate ${nameplate}`).digest('hex');
}

/** A nameplate for a relay that does not allocate (the transit relay): uniform in 1..NAMEPLATE_MAX. */
export function randomNameplate(): number {
  return randomInt(1, NAMEPLATE_MAX + 1);
}

export function relayLine(token: string, side: string): string {
  return `please relay ${token} for side ${side}\n`;
}

export function allocateLine(side: string): string {
  return `please allocate for side ${side}\n`;
}

export function nameplateLine(nameplate: number): string {
  return `nameplate ${nameplate}\n`;
}

export type RelayRequest =
  | { kind: 'relay'; token: string; side: string }
  | { kind: 'allocate'; side: string };

const RELAY_REQUEST = /^please relay ([0-9a-f]{64}) for side ([0-9a-f]{16})\n$/;
const ALLOCATE_REQUEST = /^please allocate for side ([0-9a-f]{16})\n$/;
const NAMEPLATE_ANSWER = /^nameplate ([1-9][0-9]{0,3})\n$/;

/** A client's line (with its newline) as the relay reads it; null for anything else. */
export function parseRelayRequest(line: string): RelayRequest | null {
  const relay = RELAY_REQUEST.exec(line);
  if (relay !== null) return { kind: 'relay', token: relay[1]!, side: relay[2]! };
  const allocate = ALLOCATE_REQUEST.exec(line);
  if (allocate !== null) return { kind: 'allocate', side: allocate[1]! };
  return null;
}

/** The number in a `nameplate N\n` answer; null for anything else. */
export function parseNameplate(line: string): number | null {
  const match = NAMEPLATE_ANSWER.exec(line);
  return match === null ? null : Number(match[1]);
}
