/**
 * Every failure in ferry is a FerryError with a stable string `code`. Codes
 * that travel on the wire have a u16 number (docs/protocol.md, section 8);
 * every code has the exit code the CLI ends with.
 */

/** Process exit codes, the same on both sides (README, "Exit codes"). */
export const enum ExitCode {
  Ok = 0,
  Failed = 1,
  Usage = 2,
  Integrity = 3,
  Refused = 4,
  Interrupted = 130,
}

interface CodeInfo {
  /** u16 status on the wire, or undefined for codes that never travel. */
  readonly wire?: number;
  readonly exit: ExitCode;
}

const CODES = {
  OK: { wire: 0x0000, exit: ExitCode.Ok },
  // Refusals: the receiver said no to one file (exit 4).
  ERR_EXISTS: { wire: 0x0101, exit: ExitCode.Refused },
  ERR_BAD_NAME: { wire: 0x0102, exit: ExitCode.Refused },
  ERR_NAME_TOO_LONG: { wire: 0x0103, exit: ExitCode.Refused },
  ERR_TOO_LARGE: { wire: 0x0104, exit: ExitCode.Refused },
  ERR_UNSUPPORTED_HASH: { wire: 0x0105, exit: ExitCode.Refused },
  // The session was refused before any file (exit 4): docs/security.md.
  ERR_BAD_CODE: { wire: 0x0106, exit: ExitCode.Refused },
  ERR_RATE_LIMITED: { wire: 0x0107, exit: ExitCode.Refused },
  ERR_INSECURE_MISMATCH: { wire: 0x0108, exit: ExitCode.Refused },
  // The answer to a PROBE: "I do not hold that file; send it". Never a failure (exit 0): it only ever answers a probe.
  ERR_NOT_HELD: { wire: 0x0109, exit: ExitCode.Ok },
  // Integrity: bytes arrived but are not the file (exit 3).
  ERR_HASH_MISMATCH: { wire: 0x0201, exit: ExitCode.Integrity },
  ERR_SIZE_MISMATCH: { wire: 0x0202, exit: ExitCode.Integrity },
  // Transfer failures (exit 1).
  ERR_TRANSFER: { wire: 0x0301, exit: ExitCode.Failed },
  ERR_IO: { wire: 0x0302, exit: ExitCode.Failed },
  ERR_TIMEOUT: { wire: 0x0303, exit: ExitCode.Failed },
  ERR_INTERRUPTED: { wire: 0x0304, exit: ExitCode.Failed },
  ERR_SOURCE_CHANGED: { wire: 0x0305, exit: ExitCode.Failed },
  ERR_SHUTDOWN: { wire: 0x0306, exit: ExitCode.Failed },
  // A refusal the sender retries: the name is arriving over another connection (maybe its own broken one).
  ERR_BUSY: { wire: 0x0307, exit: ExitCode.Failed },
  // Protocol violations (exit 1): the connection is dropped.
  ERR_BAD_MAGIC: { wire: 0x0401, exit: ExitCode.Failed },
  ERR_UNSUPPORTED_VERSION: { wire: 0x0402, exit: ExitCode.Failed },
  ERR_UNKNOWN_FRAME_TYPE: { wire: 0x0403, exit: ExitCode.Failed },
  ERR_FRAME_TOO_SMALL: { wire: 0x0404, exit: ExitCode.Failed },
  ERR_FRAME_TOO_LARGE: { wire: 0x0405, exit: ExitCode.Failed },
  ERR_BAD_END_MARKER: { wire: 0x0406, exit: ExitCode.Failed },
  ERR_MALFORMED_PAYLOAD: { wire: 0x0407, exit: ExitCode.Failed },
  ERR_UNEXPECTED_FRAME: { wire: 0x0408, exit: ExitCode.Failed },
  ERR_TRUNCATED: { wire: 0x0409, exit: ExitCode.Failed },
  // Local only: never on the wire.
  ERR_CONNECT: { exit: ExitCode.Failed },
  ERR_CONNECTION_LOST: { exit: ExitCode.Failed },
  ERR_LISTEN: { exit: ExitCode.Failed },
  ERR_USAGE: { exit: ExitCode.Usage },
  ERR_NOT_FOUND: { exit: ExitCode.Usage },
  ERR_UNREADABLE: { exit: ExitCode.Usage },
  ERR_SIGINT: { exit: ExitCode.Interrupted },
  ERR_SIGTERM: { exit: 143 as ExitCode },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof CODES;

const BY_WIRE = new Map<number, ErrorCode>();
for (const [code, info] of Object.entries(CODES) as [ErrorCode, CodeInfo][]) {
  if (info.wire !== undefined) BY_WIRE.set(info.wire, code);
}

/** Exit code for an error code. */
export function exitCodeOf(code: ErrorCode): ExitCode {
  return CODES[code].exit;
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

  get exitCode(): ExitCode {
    return exitCodeOf(this.code);
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
