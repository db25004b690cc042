/**
 * Progress bars on a terminal (stderr): one per file in flight, and on the
 * sender a total bar when more than one file or folder is sent. Drawn by
 * cli-progress, which redraws at most 10 times a second; lines printed while
 * bars are up go through log() so they land above the bars.
 */
import type { MultiBar, SingleBar } from 'cli-progress';
import { createRequire } from 'node:module';
import type { PlanEvent } from '../events.js';
import { printableName, terminalSafe } from '../printable.js';
import { formatBytes, formatSeconds } from './format.js';

type Side = 'send' | 'receive';

const TOTAL_KEY = '\0total';
const BAR_WIDTH = 24;

/**
 * One bar per file and side. A sender talks to one receiver and its 'sent'
 * event names no peer, so its bars are keyed by name alone (its 'start' and
 * 'progress' events do carry the peer: keying by it left the bar at 0%); a
 * receiver may take the same name from two senders at once, so the peer is
 * part of its key.
 */
function fileKey(side: Side, name: string, peer: string | undefined): string {
  return side === 'send' ? `send\0${name}` : `receive\0${peer ?? ''}\0${name}`;
}

export class ProgressBars {
  private readonly stream: NodeJS.WritableStream;
  private multibar: MultiBar | null = null;
  private readonly bars = new Map<string, SingleBar>();
  /** The sender's plan, for the total bar. */
  private plan: PlanEvent | null = null;
  private done = { entries: 0, bytes: 0, current: 0 };

  constructor(stream: NodeJS.WritableStream) {
    this.stream = stream;
  }

  /** True while bars are drawn: lines must then go through log(). */
  get active(): boolean {
    return this.multibar !== null;
  }

  setPlan(plan: PlanEvent): void {
    this.plan = plan;
    if (plan.files + plan.directories <= 1) return;
    const total = plan.files + plan.directories;
    this.bars.set(TOTAL_KEY, this.ensureMultibar().create(Math.max(plan.bytes, 1), 0, { label: `total 0/${total} files` }));
  }

  start(side: Side, name: string, bytes: number, peer: string): void {
    const label = side === 'send' ? `↑ ${printableName(name)}` : `↓ ${printableName(name)} (${peer})`;
    this.bars.set(fileKey(side, name, peer), this.ensureMultibar().create(bytes, 0, { label }));
  }

  progress(side: Side, name: string, peer: string, done: number): void {
    this.bars.get(fileKey(side, name, peer))?.update(done);
    if (side === 'send') {
      this.done.current = done;
      this.updateTotal();
    }
  }

  /** A file is done, or failed (bytes 0): its bar goes, the sender's total moves on. */
  finish(side: Side, name: string, peer: string | undefined, bytes: number): void {
    this.remove(fileKey(side, name, peer));
    if (side !== 'send') return;
    this.done.entries++;
    this.done.bytes += bytes;
    this.done.current = 0;
    this.updateTotal();
  }

  /** Prints `line` (with its newline) above the bars. */
  log(line: string): void {
    this.multibar?.log(line);
  }

  /** Removes every bar (at the end, or on exit). */
  stop(): void {
    this.multibar?.stop();
    this.multibar = null;
    this.bars.clear();
  }

  private updateTotal(): void {
    const bar = this.bars.get(TOTAL_KEY);
    if (!bar || !this.plan) return;
    const total = this.plan.files + this.plan.directories;
    bar.update(this.done.bytes + this.done.current, { label: `total ${this.done.entries}/${total} files` });
  }

  private remove(key: string): void {
    const bar = this.bars.get(key);
    if (!bar || !this.multibar) return;
    this.bars.delete(key);
    this.multibar.remove(bar);
    if (this.bars.size === 0) this.stop();
  }

  private ensureMultibar(): MultiBar {
    if (!this.multibar) {
      // Loaded only when a bar is drawn: it costs start-up time otherwise.
      const { MultiBar: MultiBarClass } = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
      this.multibar = new MultiBarClass({
        stream: this.stream,
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
        etaBuffer: 20,
        fps: 10,
        barsize: BAR_WIDTH,
        barCompleteChar: '█',
        barIncompleteChar: '░',
        format: (options, params, payload: { label: string }) => terminalSafe(barText(options, params, payload.label)),
      });
    }
    return this.multibar;
  }
}

type FormatOptions = { barCompleteString?: string; barIncompleteString?: string; barsize?: number };
type FormatParams = { value: number; total: number; progress: number; startTime: number };

function barText(options: FormatOptions, params: FormatParams, label: string): string {
  const done = params.value;
  const elapsed = (Date.now() - params.startTime) / 1000;
  const speed = elapsed > 0 ? done / elapsed : 0;
  // A stream's size is not known ahead: bytes and rate only.
  if (params.total <= 0) return `${label} ${formatBytes(done)} ${formatBytes(speed)}/s`;
  const width = options.barsize ?? BAR_WIDTH;
  const bar = (options.barCompleteString ?? '').slice(0, Math.round(params.progress * width));
  const rest = (options.barIncompleteString ?? '').slice(0, width - bar.length);
  const eta = speed > 0 && params.total > done ? `ETA ${formatSeconds((params.total - done) / speed)}` : '';
  return `${label} ${bar}${rest} ${Math.floor(params.progress * 100)}% ${formatBytes(done)}/${formatBytes(params.total)} ${formatBytes(speed)}/s ${eta}`;
}
