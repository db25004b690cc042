/**
 * Turns transfer events into what a person or a script sees:
 * --json: one JSON object per line on stdout, every event;
 * otherwise: progress bars on stderr when it is a terminal, one summary line
 * per file on stdout (none with --quiet), and errors as one line on stderr.
 */
import type { MultiBar, SingleBar } from 'cli-progress';
import { createRequire } from 'node:module';
import { networkInterfaces } from 'node:os';
import type { FerryEvent } from './events.js';
import { printableName } from './printable.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** Draw progress bars (stderr is a terminal, not --json, not --quiet). */
  bars: boolean;
  /** Where JSON and summary lines go: stdout, or stderr when stdout carries a file (receive --stdout). */
  out?: NodeJS.WritableStream;
}

/** Above this many files and folders in one send, one line per file gives way to the summary alone. */
const LINES_PER_FILE_UP_TO = 100;
const TOTAL_KEY = '\0total';

export class Output {
  private readonly options: OutputOptions;
  private readonly out: NodeJS.WritableStream;
  private multibar: MultiBar | null = null;
  private readonly bars = new Map<string, SingleBar>();
  /** The sender's plan, for the overall bar and to decide on per-file lines. */
  private plan: { files: number; directories: number; bytes: number } | null = null;
  private done = { entries: 0, bytes: 0, current: 0 };

  constructor(options: OutputOptions) {
    this.options = options;
    this.out = options.out ?? process.stdout;
  }

  readonly handle = (event: FerryEvent): void => {
    if (this.options.json) {
      this.out.write(`${JSON.stringify(event)}\n`);
      if (event.event === 'error') this.errorLine(event.message);
      return;
    }
    switch (event.event) {
      case 'plan':
        this.plan = event;
        if (this.options.bars && event.files + event.directories > 1) this.startTotalBar();
        return;
      case 'skipped':
        this.errorLine(`skipped ${printableName(event.name)}: ${event.reason === 'symlink' ? 'a symlink (ferry does not follow or recreate links)' : 'not a regular file or folder'}`);
        return;
      case 'retry':
        this.errorLine(`${event.message}; retry ${event.attempt} of ${event.of} in ${formatSeconds(event.delaySeconds)}, resuming`);
        return;
      case 'summary':
        this.stop();
        if (event.side === 'send' && (this.plan?.files ?? 0) + (this.plan?.directories ?? 0) <= 1) return;
        if (event.side === 'receive' && event.files + event.directories + event.failures === 0) return;
        this.line(
          `${event.side === 'send' ? 'sent' : 'received'} ${event.files} file${event.files === 1 ? '' : 's'}` +
            `${event.directories > 0 ? ` and ${event.directories} folder${event.directories === 1 ? '' : 's'}` : ''}, ` +
            `${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} (${rate(event.bytes, event.seconds)}), ` +
            (event.failures === 0 ? 'all verified' : `${event.failures} failed`),
        );
        return;
      case 'listening': {
        // Printed even with --quiet: with --port 0 it is the only way to learn the port, and the code is needed.
        this.line(`ferry: listening on ${hostPort(event.host, event.port)}`, true);
        const target = `${dialable(event.host)}:${event.port}`;
        if (event.code === undefined) {
          this.line('ferry: --insecure: no code, no encryption; anyone who can reach this port can send files', true);
          this.line(`ferry: on the other host run: ferry send FILE --to ${target} --insecure`, true);
        } else {
          this.line(`ferry: code ${event.code}`, true);
          this.line(`ferry: on the other host run: ferry send FILE --to ${target} --code ${event.code}`, true);
        }
        return;
      }
      case 'start':
        if (this.options.bars) this.startBar(event.side, event.name, event.bytes, event.peer);
        return;
      case 'progress':
        this.bars.get(barKey(event.side, event.name, event.peer))?.update(event.done);
        if (event.side === 'send') {
          this.done.current = event.done;
          this.updateTotal();
        }
        return;
      case 'sent': {
        this.stopBar(barKey('send', event.name, undefined));
        this.fileDone(event.bytes);
        if ((this.plan?.files ?? 0) + (this.plan?.directories ?? 0) > LINES_PER_FILE_UP_TO) return;
        const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
        if (event.directory || !event.hash) this.line(`sent folder ${printableName(event.name)}`);
        else this.line(`sent ${printableName(event.name)}: ${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} (${rate(event.transferred, event.seconds)}${resumed}), ${event.hash.algorithm} ${event.hash.digest} verified by the receiver`);
        return;
      }
      case 'received': {
        this.stopBar(barKey('receive', event.name, event.peer));
        if (event.directory || !event.hash) return;
        const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
        this.line(`received ${printableName(event.name)} from ${event.peer}: ${formatBytes(event.bytes)} in ${formatSeconds(event.seconds)} (${rate(event.bytes - event.resumedFrom, event.seconds)}${resumed}), ${event.hash.algorithm} ${event.hash.digest} verified, saved as ${event.path}`);
        return;
      }
      case 'error':
        if (event.name !== undefined) {
          this.stopBar(barKey('send', event.name, undefined));
          this.stopBar(barKey('receive', event.name, event.peer));
          this.fileDone(0);
        }
        this.errorLine(event.message);
        return;
    }
  };

  private fileDone(bytes: number): void {
    this.done.entries++;
    this.done.bytes += bytes;
    this.done.current = 0;
    this.updateTotal();
  }

  private updateTotal(): void {
    const bar = this.bars.get(TOTAL_KEY);
    if (!bar || !this.plan) return;
    const total = this.plan.files + this.plan.directories;
    bar.update(this.done.bytes + this.done.current, { label: `total ${this.done.entries}/${total} files` });
  }

  private startTotalBar(): void {
    if (!this.plan) return;
    const multibar = this.ensureMultibar();
    const total = this.plan.files + this.plan.directories;
    this.bars.set(TOTAL_KEY, multibar.create(Math.max(this.plan.bytes, 1), 0, { label: `total 0/${total} files` }));
  }

  /** Removes any bars left (on exit). */
  stop(): void {
    this.multibar?.stop();
    this.multibar = null;
    this.bars.clear();
  }

  private line(text: string, evenIfQuiet = false): void {
    if (this.options.quiet && !evenIfQuiet) return;
    if (this.multibar) this.multibar.log(`${text}\n`);
    else this.out.write(`${text}\n`);
  }

  private errorLine(message: string): void {
    if (this.multibar) this.multibar.log(`ferry: ${message}\n`);
    else process.stderr.write(`ferry: ${message}\n`);
  }

  private startBar(side: 'send' | 'receive', name: string, total: number, peer: string): void {
    const multibar = this.ensureMultibar();
    const label = side === 'send' ? `↑ ${printableName(name)}` : `↓ ${printableName(name)} (${peer})`;
    const bar = multibar.create(total, 0, { label });
    this.bars.set(barKey(side, name, side === 'send' ? undefined : peer), bar);
  }

  private ensureMultibar(): MultiBar {
    if (!this.multibar) {
      // Loaded only when a bar is drawn: it costs start-up time otherwise.
      const { MultiBar: MultiBarClass } = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
      this.multibar = new MultiBarClass({
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
        stopOnComplete: false,
        etaBuffer: 20,
        fps: 10,
        barsize: 24,
        barCompleteChar: '█',
        barIncompleteChar: '░',
        format: (options, params, payload: { label: string }) => {
          const done = params.value;
          const elapsed = (Date.now() - params.startTime) / 1000;
          const speed = elapsed > 0 ? done / elapsed : 0;
          const bar = (options.barCompleteString ?? '').slice(0, Math.round(params.progress * (options.barsize ?? 24)));
          const rest = (options.barIncompleteString ?? '').slice(0, (options.barsize ?? 24) - bar.length);
          const eta = speed > 0 && params.total > done ? `ETA ${formatSeconds((params.total - done) / speed)}` : '';
          // A stream's size is not known ahead: bytes and rate only.
          if (params.total <= 0) return `${payload.label} ${formatBytes(done)} ${formatBytes(speed)}/s`;
          return `${payload.label} ${bar}${rest} ${Math.floor(params.progress * 100)}% ${formatBytes(done)}/${formatBytes(params.total)} ${formatBytes(speed)}/s ${eta}`;
        },
      });
    }
    return this.multibar;
  }

  private stopBar(key: string): void {
    const bar = this.bars.get(key);
    if (!bar || !this.multibar) return;
    this.bars.delete(key);
    this.multibar.remove(bar);
    if (this.bars.size === 0) this.stop();
  }
}

function barKey(side: string, name: string, peer: string | undefined): string {
  return `${side}\0${peer ?? ''}\0${name}`;
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
  const shown = host === '::' || host === '0.0.0.0' ? `all interfaces (${host.includes(':') ? `[${host}]` : host})` : host.includes(':') ? `[${host}]` : host;
  return `${shown} port ${port}`;
}

/** 1536 -> '1.5 KiB'. Binary units, one decimal. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function rate(bytes: number, seconds: number): string {
  return seconds > 0 ? `${formatBytes(bytes / seconds)}/s` : 'instant';
}
