/**
 * Many files: a line per file is what a person wants for a few, and a flood
 * for thousands. Up to LIST_UP_TO files (per sender, on a receiver) each get
 * their short line; beyond that only a running count, at most every
 * TALLY_EVERY_MS, and the summary at the end. -v lists every file with its
 * full line whatever the count; --json is not concerned (every event).
 * Returns the lines to print; src/output/index.ts prints them.
 */
import type { PlanEvent, ReceivedEvent, SentEvent, UnchangedEvent } from '../events.js';
import { countingLine, receivedLine, receivedTallyLine, senderLine, sentLine, sentTallyLine, unchangedLine } from './lines.js';

/** Above this many files and folders in one send (or files from one sender), a count replaces the lines. */
export const LIST_UP_TO = 100;
/** Often enough to show the transfer is alive, rarely enough to read. */
export const TALLY_EVERY_MS = 10_000;
/**
 * Senders a receiver keeps a count for. There is no event for a session's
 * end, so the oldest is forgotten past this: a long-running receiver's
 * memory stays bounded, and a forgotten sender at worst gets lines again.
 */
const PEERS_KEPT = 1000;

interface Count {
  files: number;
  bytes: number;
  /** When the last count line was printed (or counting began). */
  lastTally: number;
}

export class ManyFiles {
  private readonly verbose: boolean;
  private readonly now: () => number;
  private plan: PlanEvent | null = null;
  private readonly sending: Count = { files: 0, bytes: 0, lastTally: 0 };
  private readonly peers = new Map<string, Count>();
  /**
   * The sender the last receiver line was about. A short line does not name
   * its sender (it would not fit 80 columns): a line without one is from the
   * sender named above it, and senderLine() comes first whenever it changes.
   */
  private lastPeer: string | null = null;

  constructor(options: { verbose: boolean; now?: () => number }) {
    this.verbose = options.verbose;
    this.now = options.now ?? (() => performance.now());
  }

  setPlan(plan: PlanEvent): void {
    this.plan = plan;
    this.sending.lastTally = this.now();
  }

  sent(event: SentEvent): string[] {
    const planned = this.plan ? this.plan.files + this.plan.directories : 0;
    if (this.verbose || planned <= LIST_UP_TO) return [sentLine(event, this.verbose)];
    if (event.directory) return [];
    const count = this.sending;
    count.files++;
    count.bytes += event.bytes;
    if (!this.due(count)) return [];
    return [sentTallyLine(count.files, this.plan!.files, count.bytes, this.plan!.bytes)];
  }

  /**
   * A file not sent again: its line while the send lists its files (the
   * summary counts them all); on a receiver only with -v, since nothing
   * was written.
   */
  unchanged(event: UnchangedEvent): string[] {
    const planned = this.plan ? this.plan.files + this.plan.directories : 0;
    const listed = event.side === 'send' ? planned <= LIST_UP_TO : false;
    return this.verbose || listed ? [unchangedLine(event, this.verbose)] : [];
  }

  received(event: ReceivedEvent): string[] {
    const line = receivedLine(event, this.verbose);
    if (line === null) return [];
    if (this.verbose) return [line];
    const count = this.countOf(event.peer);
    count.files++;
    count.bytes += event.bytes;
    const lines = this.receiverLines(event.peer, count, line);
    if (lines.length > 0) this.lastPeer = event.peer;
    return lines;
  }

  /** The file's short line while its sender's files are few; then count lines, which name the sender themselves. */
  private receiverLines(peer: string, count: Count, line: string): string[] {
    if (count.files <= LIST_UP_TO) return this.lastPeer === peer ? [line] : [senderLine(peer), line];
    if (count.files === LIST_UP_TO + 1) {
      count.lastTally = this.now();
      return [countingLine(peer, LIST_UP_TO)];
    }
    return this.due(count) ? [receivedTallyLine(peer, count.files, count.bytes)] : [];
  }

  private due(count: Count): boolean {
    const now = this.now();
    if (now - count.lastTally < TALLY_EVERY_MS) return false;
    count.lastTally = now;
    return true;
  }

  private countOf(peer: string): Count {
    let count = this.peers.get(peer);
    if (count === undefined) {
      if (this.peers.size >= PEERS_KEPT) this.peers.delete(this.peers.keys().next().value!);
      count = { files: 0, bytes: 0, lastTally: 0 };
      this.peers.set(peer, count);
    }
    return count;
  }
}
