/**
 * The human lines: what a person reads for each event, as plain strings
 * without the trailing newline. Pure functions; src/output/index.ts decides
 * where each line goes and passes it through terminalSafe() on the way.
 */
import { networkInterfaces } from 'node:os';
import type { FoundEvent, ListeningEvent, ReceivedEvent, RetryEvent, SentEvent, SkippedEvent, SummaryEvent, UnchangedEvent } from '../events.js';
import { printableName } from '../printable.js';
import { formatBytes, formatSeconds, rate } from './format.js';

/**
 * What a receiver prints on start. The sender's command carries the code in
 * FERRY_CODE, not --code: other local users can read a process's argv (ps).
 */
export function listeningLines(event: ListeningEvent): string[] {
  if ('relay' in event || event.side === 'send') return waitingLines(event);
  const target = `${dialable(event.host)}:${event.port}`;
  const lines = [`ferry: listening on ${hostPort(event.host, event.port)}`];
  if (event.code === undefined) {
    lines.push('ferry: --insecure: no code, no encryption; anyone who can reach this port can send files');
    lines.push(`ferry: on the other host run: ferry send FILE --to ${target} --insecure`);
  } else {
    lines.push(`ferry: code ${event.code}`);
    lines.push(`ferry: on the other host run: FERRY_CODE=${event.code} ferry send FILE --to ${target}`);
    if (event.announcing) lines.push('ferry: announced on the LAN: on the same network, --to may be left out');
  }
  return lines;
}

/**
 * A side that waits for its peer other than `ferry receive` on a port: a
 * receiver or a sender at a relay, or `send --listen`. The command for the
 * other host names this side the way it is reached.
 */
function waitingLines(event: ListeningEvent): string[] {
  const other = event.side === 'send' ? 'ferry receive' : 'ferry send FILE';
  const [lines, reach] =
    'relay' in event
      ? [[`ferry: waiting at the relay ${event.relay}`], `--relay ${event.relay}`]
      : [[`ferry: listening on ${hostPort(event.host, event.port)}`], `--from ${dialable(event.host)}:${event.port}`];
  if (event.code === undefined) {
    lines.push('ferry: --insecure: no code, no encryption');
    lines.push(`ferry: on the other host run: ${other} ${reach} --insecure`);
  } else {
    lines.push(`ferry: code ${event.code}`);
    lines.push(`ferry: on the other host run: FERRY_CODE=${event.code} ${other} ${reach}`);
  }
  return lines;
}

export function foundLine(event: FoundEvent): string {
  return `found the receiver on the LAN at ${hostPort(event.host, event.port)}`;
}

export function skippedLine(event: SkippedEvent): string {
  const why = event.reason === 'symlink' ? 'a symlink (ferry does not follow or recreate links)' : 'not a regular file or folder';
  return `skipped ${printableName(event.name)}: ${why}`;
}

export function retryLine(event: RetryEvent): string {
  return `${event.message}; retry ${event.attempt} of ${event.of} in ${formatSeconds(event.delaySeconds)}, resuming`;
}

export function summaryLine(event: SummaryEvent): string {
  const files = `${event.files} file${event.files === 1 ? '' : 's'}`;
  const folders = event.directories > 0 ? ` and ${event.directories} folder${event.directories === 1 ? '' : 's'}` : '';
  const outcome = event.failures === 0 ? 'all verified' : `${event.failures} failed`;
  const unchanged = event.unchanged ? `, ${event.unchanged} unchanged` : '';
  return `${event.side === 'send' ? 'sent' : 'received'} ${files}${folders}, ${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} (${rate(event.bytes, event.seconds)})${unchanged}, ${outcome}`;
}

/**
 * A sent file as one line short enough not to wrap: name, size, time, rate.
 * `verbose` (-v) is the long line, with the digest the receiver checked (64
 * hex digits for either hash).
 */
export function sentLine(event: SentEvent, verbose = false): string {
  if (event.directory || !event.hash) return `sent folder ${printableName(event.name)}`;
  const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
  const name = printableName(event.name);
  if (!verbose) return `sent ${name}: ${formatBytes(event.bytes)}, ${formatSeconds(event.seconds)}, ${rate(event.transferred, event.seconds)}${resumed}, verified by the receiver`;
  return (
    `sent ${name}: ${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} ` +
    `(${rate(event.transferred, event.seconds)}${resumed}), ${event.hash.algorithm} ${event.hash.digest} verified by the receiver`
  );
}

/** A file not sent because the receiver holds the same content; `verbose` adds the digest both sides computed. */
export function unchangedLine(event: UnchangedEvent, verbose = false): string {
  const name = printableName(event.name);
  const digest = verbose ? `, ${event.hash.algorithm} ${event.hash.digest}` : '';
  const from = event.peer ?? 'a sender';
  if (event.side === 'receive' && event.directory) return `unchanged folder ${name} from ${from}: every file already here, the same${digest}`;
  if (event.side === 'receive') return `unchanged ${name} from ${from}: ${formatBytes(event.bytes)} already here, the same${digest}`;
  return `unchanged ${name}: ${formatBytes(event.bytes)}, the receiver has the same content${digest}, not sent`;
}

/**
 * Null for a folder: the receiver prints files only. The short line leaves
 * out the digest, the path (--dir and the name) and the sender, which
 * senderLine() gives above it; `verbose` is the long line, with all three.
 */
export function receivedLine(event: ReceivedEvent, verbose = false): string | null {
  if (event.directory || !event.hash) return null;
  const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
  const name = printableName(event.name);
  const speed = rate(event.bytes - event.resumedFrom, event.seconds);
  if (!verbose) return `received ${name}: ${formatBytes(event.bytes)}, ${formatSeconds(event.seconds)}, ${speed}${resumed}, verified`;
  // The path holds the peer's name: quoted and escaped as the name is, when it needs to be.
  return (
    `received ${name} from ${event.peer}: ${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} ` +
    `(${speed}${resumed}), ${event.hash.algorithm} ${event.hash.digest} verified, saved as ${printableName(event.path)}`
  );
}

/** Above the short lines of a sender's files whenever the sender is not the one of the line before. */
export function senderLine(peer: string): string {
  return `from ${peer}:`;
}

/** The sender's running count, when there are too many files for a line each. */
export function sentTallyLine(files: number, planned: number, bytes: number, plannedBytes: number): string {
  return `sent ${files} of ${planned} files so far, ${formatBytes(bytes)} of ${formatBytes(plannedBytes)}`;
}

/** Printed once per sender, the moment its files stop getting a line each. */
export function countingLine(peer: string, listed: number): string {
  return `over ${listed} files from ${peer}: counting instead of listing (-v lists each)`;
}

/** The receiver's running count of one sender's files, in place of a line each. */
export function receivedTallyLine(peer: string, files: number, bytes: number): string {
  return `received ${files} files from ${peer} so far, ${formatBytes(bytes)}, each verified`;
}

/** An address the other host can dial: a wildcard becomes this host's first external IPv4 address. */
function dialable(host: string): string {
  if (host !== '::' && host !== '0.0.0.0') return host.includes(':') ? `[${host}]` : host;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return 'THIS-HOST';
}

function hostPort(host: string, port: number): string {
  const bracketed = host.includes(':') ? `[${host}]` : host;
  const shown = host === '::' || host === '0.0.0.0' ? `all interfaces (${bracketed})` : bracketed;
  return `${shown} port ${port}`;
}
