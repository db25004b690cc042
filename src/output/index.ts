/**
 * Turns transfer events into what a person or a script sees:
 * --json: one JSON object per line (src/output/json.ts), every event;
 * otherwise: progress bars on stderr when it is a terminal (bars.ts), one
 * short line per file on stdout (lines.ts; none with --quiet), a running
 * count instead for many files (many-files.ts), and errors as one line on
 * stderr. Every human line passes terminalSafe() last.
 */
import type { FerryEvent } from '../events.js';
import { terminalSafe } from '../printable.js';
import { ProgressBars } from './bars.js';
import { jsonLine } from './json.js';
import { foundLine, listeningLines, retryLine, skippedLine, summaryLine } from './lines.js';
import { ManyFiles } from './many-files.js';

export { formatBytes } from './format.js';
export { jsonLine } from './json.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** -v: every file's full line (digest, path), however many files. */
  verbose?: boolean;
  /** Milliseconds, for the running count's pace; performance.now() by default (tests pass their own). */
  now?: () => number;
  /** Draw progress bars (stderr is a terminal, not --json, not --quiet). */
  bars: boolean;
  /** Where JSON and summary lines go: stdout, or stderr when stdout carries a file (receive --stdout). */
  out?: NodeJS.WritableStream;
  /** Where bars and error lines go: stderr. */
  err?: NodeJS.WritableStream;
}

/** Outputs holding JSON lines, written out if the process exits first. */
const holding = new Set<Output>();
let exitHooked = false;

/** Writes every JSON line held: before a line written some other way (main.ts's last error) that must not overtake them. */
export function writeHeldLines(): void {
  holding.forEach((output) => output.stop());
}

export class Output {
  private readonly options: OutputOptions;
  private readonly out: NodeJS.WritableStream;
  private readonly err: NodeJS.WritableStream;
  private readonly bars: ProgressBars | null;
  private readonly files: ManyFiles;
  /** Files and folders the sender's plan holds (0 until the plan arrives). */
  private planned = 0;
  /** JSON lines held for one write (jsonLine). */
  private held: string[] = [];

  constructor(options: OutputOptions) {
    this.options = options;
    this.out = options.out ?? process.stdout;
    this.err = options.err ?? process.stderr;
    this.bars = options.bars && !options.json ? new ProgressBars(this.err) : null;
    this.files = new ManyFiles({ verbose: options.verbose ?? false, ...(options.now ? { now: options.now } : {}) });
  }

  readonly handle = (event: FerryEvent): void => {
    if (this.options.json) {
      this.jsonLine(`${jsonLine(event)}\n`);
      if (event.event === 'error') this.errorLine(event.message);
      return;
    }
    switch (event.event) {
      case 'plan':
        this.planned = event.files + event.directories;
        this.bars?.setPlan(event);
        this.files.setPlan(event);
        return;
      case 'skipped':
        return this.errorLine(skippedLine(event));
      case 'retry':
        return this.errorLine(retryLine(event));
      case 'found':
        return this.line(foundLine(event));
      case 'summary':
        this.stop();
        if (event.side === 'send' && this.planned <= 1) return;
        if (event.side === 'receive' && event.files + event.directories + event.failures === 0) return;
        return this.line(summaryLine(event));
      case 'listening':
        // Printed even with --quiet: with --port 0 it is the only way to learn the port, and the code is needed.
        for (const text of listeningLines(event)) this.line(text, true);
        return;
      case 'start':
        this.bars?.start(event.side, event.name, event.bytes, event.peer);
        return;
      case 'progress':
        this.bars?.progress(event.side, event.name, event.peer, event.done);
        return;
      case 'sent':
        this.bars?.finish('send', event.name, undefined, event.bytes);
        for (const text of this.files.sent(event)) this.line(text);
        return;
      case 'unchanged':
        // Done as much as a sent file: the overall bar counts it.
        if (event.side === 'send') this.bars?.finish('send', event.name, undefined, event.bytes);
        for (const text of this.files.unchanged(event)) this.line(text);
        return;
      case 'received':
        this.bars?.finish('receive', event.name, event.peer, event.bytes);
        for (const text of this.files.received(event)) this.line(text);
        return;
      case 'error':
        if (event.name !== undefined) {
          this.bars?.finish('send', event.name, undefined, 0);
          this.bars?.finish('receive', event.name, event.peer, 0);
        }
        return this.errorLine(event.message);
    }
  };

  /** Removes any bars left, and writes the JSON lines held (on exit). */
  stop(): void {
    this.bars?.stop();
    this.uncork();
  }

  /**
   * The --json lines of one turn of the event loop go out in one write: a
   * receiver of 10,000 small files made 10,000 writes of one line each
   * (about 20 us of its CPU a file, measured here). They are held until
   * the next turn at most, and written at exit in any case.
   */
  private jsonLine(line: string): void {
    if (this.held.length === 0) {
      setImmediate(() => this.uncork());
      holding.add(this);
      if (!exitHooked) {
        exitHooked = true;
        process.once('exit', () => holding.forEach((output) => output.uncork()));
      }
    }
    this.held.push(line);
  }

  private uncork(): void {
    if (this.held.length === 0) return;
    const text = this.held.join('');
    this.held = [];
    holding.delete(this);
    this.out.write(text);
  }

  private line(text: string, evenIfQuiet = false): void {
    if (this.options.quiet && !evenIfQuiet) return;
    this.write(this.out, terminalSafe(text));
  }

  private errorLine(message: string): void {
    this.write(this.err, terminalSafe(`ferry: ${message}`));
  }

  private write(stream: NodeJS.WritableStream, line: string): void {
    // Through the bars only when the line shares their terminal: a stdout redirected to a file keeps its lines.
    const onTheBarsTerminal = stream === this.err || (stream as { isTTY?: boolean }).isTTY === true;
    if (this.bars?.active && onTheBarsTerminal) this.bars.log(`${line}\n`);
    else stream.write(`${line}\n`);
  }
}
