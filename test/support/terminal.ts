/**
 * A fake terminal for the output tests: a stream that says it is a TTY and
 * records what is written, and a small VT100 model that replays it into the
 * lines a person would see. It knows what cli-progress and readline emit:
 * CR, LF (as a terminal's ONLCR shows it: to column 0 of the next line),
 * cursor up/down/left/right and to a column or position, erase in line and
 * below, save/restore, and cursor/wrap modes. Anything else is kept visible
 * as `<ESC…>` / `<0x..>` so a test sees it instead of it vanishing.
 */
import { Writable } from 'node:stream';

export class FakeTty extends Writable {
  readonly isTTY: boolean;
  readonly columns: number;
  readonly rows = 24;
  readonly chunks: string[] = [];

  /** `tty: false` makes a plain recorder, like a stdout redirected to a file. */
  constructor(options: { columns?: number; tty?: boolean } = {}) {
    // Strings stay strings, and each write is recorded before write() returns.
    super({ decodeStrings: false });
    this.columns = options.columns ?? 100;
    this.isTTY = options.tty ?? true;
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    callback();
  }

  /** Everything written so far, as one string. */
  get text(): string {
    return this.chunks.join('');
  }

  /** What the screen shows now: one string per line, trailing blanks and empty last lines dropped. */
  screen(): string[] {
    return render(this.text, this.columns);
  }

  /** Whether the cursor was left hidden. */
  cursorHidden(): boolean {
    const hide = this.text.lastIndexOf('\x1b[?25l');
    return hide !== -1 && hide > this.text.lastIndexOf('\x1b[?25h');
  }
}

// eslint-disable-next-line no-control-regex
const SEQUENCE = /^\x1b(?:\[([?]?)([\d;]*)([A-Za-z])|([78]))/;

export function render(text: string, columns: number): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  let saved = { row: 0, col: 0 };
  const line = (r: number): string[] => {
    while (lines.length <= r) lines.push([]);
    return lines[r]!;
  };
  const put = (s: string): void => {
    if (col >= columns) {
      row++;
      col = 0;
    }
    const l = line(row);
    while (l.length < col) l.push(' ');
    l[col++] = s;
  };
  for (let i = 0; i < text.length; ) {
    const char = text[i]!;
    if (char === '\x1b') {
      const m = SEQUENCE.exec(text.slice(i, i + 16));
      if (!m) {
        put('<ESC>');
        i++;
        continue;
      }
      i += m[0].length;
      if (m[4] === '7') saved = { row, col };
      else if (m[4] === '8') ({ row, col } = saved);
      else if (m[1] === '?') continue; // cursor visibility, line wrapping
      else [row, col] = csi(m[3]!, (m[2] ?? '').split(';').map((n) => (n === '' ? NaN : Number(n))), row, col, lines, line);
      continue;
    }
    i += char.length;
    if (char === '\r') col = 0;
    else if (char === '\n') {
      row++;
      col = 0;
      line(row);
    } else if (char < ' ' || (char >= '\x7f' && char <= '\x9f')) put(`<0x${char.charCodeAt(0).toString(16).padStart(2, '0')}>`);
    else put(char);
  }
  const shown = lines.map((l) => l.join('').trimEnd());
  while (shown.length > 0 && shown.at(-1) === '') shown.pop();
  return shown;
}

function csi(final: string, args: number[], row: number, col: number, lines: string[][], line: (r: number) => string[]): [number, number] {
  const n = Number.isNaN(args[0]!) ? 1 : args[0]!;
  switch (final) {
    case 'A':
      return [Math.max(0, row - n), col];
    case 'B':
      line(row + n);
      return [row + n, col];
    case 'C':
      return [row, col + n];
    case 'D':
      return [row, Math.max(0, col - n)];
    case 'G':
      return [row, n - 1];
    case 'H':
    case 'f':
      return [(Number.isNaN(args[0]!) ? 1 : args[0]!) - 1, (Number.isNaN(args[1] ?? NaN) ? 1 : args[1]!) - 1];
    case 'K': {
      const l = line(row);
      const mode = Number.isNaN(args[0]!) ? 0 : args[0]!;
      if (mode === 0) l.length = Math.min(l.length, col);
      else if (mode === 1) for (let c = 0; c <= col && c < l.length; c++) l[c] = ' ';
      else l.length = 0;
      return [row, col];
    }
    case 'J': {
      // Erase below (cli-progress's clearBottom): the rest of this line and every line under it.
      const l = line(row);
      l.length = Math.min(l.length, col);
      for (let r = row + 1; r < lines.length; r++) lines[r]!.length = 0;
      return [row, col];
    }
    default:
      line(row).push(`<CSI ${args.join(';')}${final}>`);
      return [row, col];
  }
}
