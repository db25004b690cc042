/**
 * The exit code a process ends with for each error code, the same on both
 * sides (README, "Exit codes"). CLI and library policy, kept out of
 * src/protocol: the wire knows statuses, not processes.
 */
import { FerryError, type ErrorCode } from './protocol/errors.js';

/** Process exit codes. */
export const enum ExitCode {
  Ok = 0,
  /** A transfer failed: network, I/O, timeout, protocol violation. */
  Failed = 1,
  /** Bad flags, a missing file, no code. */
  Usage = 2,
  /** Bytes arrived but are not the file. */
  Integrity = 3,
  /** The receiver said no. */
  Refused = 4,
  /** No receiver found: `ferry send` without --to heard none on the LAN that answered. */
  NoReceiver = 5,
  /** A relay answered something other than its documented lines: not a ferry relay, or not a working one. */
  Relay = 6,
  Interrupted = 130,
}

const EXIT: Readonly<Record<ErrorCode, ExitCode>> = {
  OK: ExitCode.Ok,
  ERR_EXISTS: ExitCode.Refused,
  ERR_BAD_NAME: ExitCode.Refused,
  ERR_NAME_TOO_LONG: ExitCode.Refused,
  ERR_TOO_LARGE: ExitCode.Refused,
  ERR_UNSUPPORTED_HASH: ExitCode.Refused,
  ERR_BAD_CODE: ExitCode.Refused,
  ERR_RATE_LIMITED: ExitCode.Refused,
  ERR_INSECURE_MISMATCH: ExitCode.Refused,
  // Only ever the answer to a probe: "send it".
  ERR_NOT_HELD: ExitCode.Ok,
  ERR_HASH_MISMATCH: ExitCode.Integrity,
  ERR_SIZE_MISMATCH: ExitCode.Integrity,
  ERR_TRANSFER: ExitCode.Failed,
  ERR_IO: ExitCode.Failed,
  ERR_TIMEOUT: ExitCode.Failed,
  ERR_INTERRUPTED: ExitCode.Failed,
  ERR_SOURCE_CHANGED: ExitCode.Failed,
  ERR_SHUTDOWN: ExitCode.Failed,
  ERR_BUSY: ExitCode.Failed,
  ERR_BAD_MAGIC: ExitCode.Failed,
  ERR_UNSUPPORTED_VERSION: ExitCode.Failed,
  ERR_UNKNOWN_FRAME_TYPE: ExitCode.Failed,
  ERR_FRAME_TOO_SMALL: ExitCode.Failed,
  ERR_FRAME_TOO_LARGE: ExitCode.Failed,
  ERR_BAD_END_MARKER: ExitCode.Failed,
  ERR_MALFORMED_PAYLOAD: ExitCode.Failed,
  ERR_UNEXPECTED_FRAME: ExitCode.Failed,
  ERR_TRUNCATED: ExitCode.Failed,
  ERR_CONNECT: ExitCode.Failed,
  ERR_CONNECTION_LOST: ExitCode.Failed,
  ERR_LISTEN: ExitCode.Failed,
  ERR_RELAY: ExitCode.Relay,
  ERR_USAGE: ExitCode.Usage,
  ERR_NOT_FOUND: ExitCode.Usage,
  ERR_NO_RECEIVER: ExitCode.NoReceiver,
  ERR_UNREADABLE: ExitCode.Usage,
  ERR_SIGINT: ExitCode.Interrupted,
  ERR_SIGTERM: 143 as ExitCode,
};

/** The exit code for an error code (for a FerryError: `exitCodeOf(err.code)`). */
export function exitCodeOf(code: ErrorCode): ExitCode {
  return EXIT[code];
}

/*
 * `err.exitCode` on a FerryError is part of the library's API (README, "As
 * a library": send() rejects with one, and callers read its exit code). The
 * class lives in src/protocol, which knows nothing of processes, so the
 * property is given to it here, where the policy is, for everything that
 * imports ferry through src/index.ts or the CLI.
 */
declare module './protocol/errors.js' {
  interface FerryError {
    /** The process exit code this error maps to (exit-codes.ts). */
    readonly exitCode: ExitCode;
  }
}

Object.defineProperty(FerryError.prototype, 'exitCode', {
  get(this: FerryError): ExitCode {
    return exitCodeOf(this.code);
  },
  configurable: true,
});
