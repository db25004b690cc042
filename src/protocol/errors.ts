/**
 * Every failure in ferry is a FerryError with a stable string `code`. Codes
 * that travel on the wire have a u16 number (docs/protocol.md, section 8).
 * What a code means for a process's exit status is policy, not wire format:
 * src/exit-codes.ts.
 */

interface CodeInfo {
  /** u16 status on the wire, or undefined for codes that never travel. */
  readonly wire?: number;
}

const CODES = {
  OK: { wire: 0x0000 },
  // Refusals: the receiver said no to one file.
  ERR_EXISTS: { wire: 0x0101 },
  ERR_BAD_NAME: { wire: 0x0102 },
  ERR_NAME_TOO_LONG: { wire: 0x0103 },
  ERR_TOO_LARGE: { wire: 0x0104 },
  ERR_UNSUPPORTED_HASH: { wire: 0x0105 },
  // The session was refused before any file: docs/security.md.
  ERR_BAD_CODE: { wire: 0x0106 },
  ERR_RATE_LIMITED: { wire: 0x0107 },
  ERR_INSECURE_MISMATCH: { wire: 0x0108 },
  // The answer to a PROBE: "I do not hold that file; send it". Never a failure: it only ever answers a probe.
  ERR_NOT_HELD: { wire: 0x0109 },
  // Integrity: bytes arrived but are not the file.
  ERR_HASH_MISMATCH: { wire: 0x0201 },
  ERR_SIZE_MISMATCH: { wire: 0x0202 },
  // Transfer failures.
  ERR_TRANSFER: { wire: 0x0301 },
  ERR_IO: { wire: 0x0302 },
  ERR_TIMEOUT: { wire: 0x0303 },
  ERR_INTERRUPTED: { wire: 0x0304 },
  ERR_SOURCE_CHANGED: { wire: 0x0305 },
  ERR_SHUTDOWN: { wire: 0x0306 },
  // A refusal the sender retries: the name is arriving over another connection (maybe its own broken one).
  ERR_BUSY: { wire: 0x0307 },
  // Protocol violations: the connection is dropped.
  ERR_BAD_MAGIC: { wire: 0x0401 },
  ERR_UNSUPPORTED_VERSION: { wire: 0x0402 },
  ERR_UNKNOWN_FRAME_TYPE: { wire: 0x0403 },
  ERR_FRAME_TOO_SMALL: { wire: 0x0404 },
  ERR_FRAME_TOO_LARGE: { wire: 0x0405 },
  ERR_BAD_END_MARKER: { wire: 0x0406 },
  ERR_MALFORMED_PAYLOAD: { wire: 0x0407 },
  ERR_UNEXPECTED_FRAME: { wire: 0x0408 },
  ERR_TRUNCATED: { wire: 0x0409 },
  // Local only: never on the wire.
  ERR_CONNECT: {},
  ERR_CONNECTION_LOST: {},
  ERR_LISTEN: {},
  /** A relay answered something other than its documented lines (docs/protocol.md, section 1.2). */
  ERR_RELAY: {},
  ERR_USAGE: {},
  ERR_NOT_FOUND: {},
  // No receiver on the LAN answered with the code (src/discovery/find.ts).
  ERR_NO_RECEIVER: {},
  ERR_UNREADABLE: {},
  ERR_SIGINT: {},
  ERR_SIGTERM: {},
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof CODES;

const BY_WIRE = new Map<number, ErrorCode>();
for (const [code, info] of Object.entries(CODES) as [ErrorCode, CodeInfo][]) {
  if (info.wire !== undefined) BY_WIRE.set(info.wire, code);
}

/**
 * u16 wire status for a code. Local-only codes travel as ERR_TRANSFER, but a
 * signal travels as ERR_INTERRUPTED so the peer can say what happened.
 */
export function wireStatusOf(code: ErrorCode): number {
  if (code === 'ERR_SIGINT' || code === 'ERR_SIGTERM') return CODES.ERR_INTERRUPTED.wire;
  const info: CodeInfo = CODES[code];
  return info.wire ?? CODES.ERR_TRANSFER.wire;
}

/** Code for a u16 wire status; unknown statuses read as ERR_TRANSFER (docs/protocol.md, section 8). */
export function codeOfWireStatus(status: number): ErrorCode {
  return BY_WIRE.get(status) ?? 'ERR_TRANSFER';
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(CODES, value);
}

/** The one error class of ferry. `code` is stable; tests assert on it, never on the message. */
export class FerryError extends Error {
  readonly code: ErrorCode;
  /** True when the error was reported by the peer rather than found here. */
  readonly remote: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; remote?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FerryError';
    this.code = code;
    this.remote = options?.remote ?? false;
  }
}

/** Anything thrown, as a FerryError (unknown errors become ERR_TRANSFER). */
export function toFerryError(err: unknown, fallback: ErrorCode = 'ERR_TRANSFER'): FerryError {
  if (err instanceof FerryError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new FerryError(fallback, message, { cause: err });
}

/** Why an AbortSignal fired, as a FerryError: its reason if it is one, ERR_SIGINT otherwise. */
export function abortError(signal: AbortSignal | undefined): FerryError {
  const reason: unknown = signal?.reason;
  return reason instanceof FerryError ? reason : new FerryError('ERR_SIGINT', 'interrupted');
}
