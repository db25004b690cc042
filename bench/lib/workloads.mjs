/**
 * What is measured. A workload makes its data (once per invocation) and
 * lists rows: which tool sends which payload in which mode, and what its
 * numbers are compared with:
 *   ref   the baseline ("vs" column): for a ferry row whose receiver
 *         fsyncs (ferry's default) the durable baseline (`nc durable`,
 *         `tar|nc durable`), for a ferry row with --no-fsync the plain one
 *         (`nc`, `tar|nc`), so that a ratio never compares a tool that
 *         waits for the disk with one that does not;
 *   ref2  optionally a sibling ferry row ("vs sibling" column), to show
 *         what one feature costs: ferry plain vs ferry is encryption,
 *         ferry no-fsync vs ferry is the flush.
 *
 * unit: 'MB/s' (10^6 bytes per second, higher is better), 'files/s'
 * (higher is better) or 's' (wall seconds, lower is better).
 * cpuPer: what CPU seconds are divided by in the cost table (GiB of
 * payload, or 1,000 files); none for the fixed-cost workload, whose cost is
 * the transfer itself.
 */
import { MiB, makeDir, makeFile, makePartsAndWhole } from './data.mjs';

const SMALL_FILE = 4096;
const PART = MiB;
const GiB = 1024 * MiB;

const PER_GIB = { unit: 'GiB', of: (payload) => payload.bytes / GiB };
const PER_1K_FILES = { unit: '1k files', of: (payload) => payload.files / 1000 };

function row(label, tool, mode, payload, { ref = null, ref2 = null, durable = false } = {}) {
  return { label, tool, mode, payload, ref, ref2, durable };
}

/**
 * Whether `ferry receive` flushes each file in the rows of `tool`. The
 * -nofsync tools always pass --no-fsync; the others follow --ferry-args
 * (the last of --fsync / --no-fsync given there wins, as in yargs).
 */
export function ferryDurable(tool, ferryArgs) {
  if (tool.endsWith('-nofsync')) return false;
  const last = ferryArgs.filter((a) => a === '--fsync' || a === '--no-fsync' || a === '--fsync=false' || a === '--fsync=true').at(-1);
  return last === undefined || last === '--fsync' || last === '--fsync=true';
}

/**
 * The four ferry variants: encrypted and --insecure, each with the
 * receiver's fsync (default) and without, so one run shows them side by
 * side. `baseline` / `durableBaseline` are the labels of this workload's
 * plain and durable baseline rows.
 */
function ferryRows(options, mode, payload, baseline, durableBaseline, labelSuffix = '') {
  const variants = [
    ['ferry', 'ferry', null],
    ['ferry plain', 'ferry-plain', 'ferry'],
    ['ferry no-fsync', 'ferry-nofsync', 'ferry'],
    ['ferry plain no-fsync', 'ferry-plain-nofsync', 'ferry plain'],
  ];
  return variants.map(([label, tool, sibling]) => {
    const durable = ferryDurable(tool, options.ferryArgs);
    return row(`${label}${labelSuffix}`, tool, mode, payload, {
      ref: durable ? durableBaseline : baseline,
      ref2: sibling === null ? null : `${sibling}${labelSuffix}`,
      durable,
    });
  });
}

/** ferry, nc, scp and rsync each sending the `main` payload as one file. */
function oneFileRows(options) {
  return [
    ...ferryRows(options, 'file', 'main', 'nc', 'nc durable'),
    row('nc', 'nc', 'file', 'main'),
    // What the flush costs nc: the same bytes, then fdatasync before the receiver exits.
    row('nc durable', 'nc-durable', 'file', 'main', { ref: 'nc', durable: true }),
    row('scp', 'scp', 'file', 'main', { ref: 'nc' }),
    row('rsync', 'rsync', 'file', 'main', { ref: 'nc' }),
  ];
}

/** Human size for titles: MiB, KiB or bytes. */
export function mib(bytes) {
  if (bytes >= MiB) return `${+(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} byte${bytes === 1 ? '' : 's'}`;
}

export function defineWorkloads(options) {
  const big = options.sizeMb * MiB;
  const n = options.senders;
  return [
    {
      id: '1g',
      title: `one ${mib(big)} file`,
      unit: 'MB/s',
      cpuPer: PER_GIB,
      prepare: async (dir) => ({ main: await makeFile(dir, 'big.bin', big) }),
      rows: oneFileRows(options),
    },
    {
      id: '4g',
      title: `one ${mib(4 * big)} file (does memory stay flat?)`,
      unit: 'MB/s',
      cpuPer: PER_GIB,
      prepare: async (dir) => ({ main: await makeFile(dir, 'huge.bin', 4 * big) }),
      rows: oneFileRows(options),
    },
    {
      id: '10k',
      title: `${options.files} files of ${mib(SMALL_FILE)} in one directory`,
      unit: 'files/s',
      cpuPer: PER_1K_FILES,
      prepare: async (dir) => ({ main: await makeDir(dir, 'small', options.files, SMALL_FILE) }),
      rows: [
        ...ferryRows(options, 'dir', 'main', 'tar|nc', 'tar|nc durable'),
        row('tar|nc', 'nc', 'dir', 'main'),
        // tar x, then fdatasync of every received file (the guarantee ferry gives), see tools.mjs.
        row('tar|nc durable', 'nc-durable', 'dir', 'main', { ref: 'tar|nc', durable: true }),
        row('rsync', 'rsync', 'dir', 'main', { ref: 'tar|nc' }),
      ],
    },
    {
      id: 'concurrent',
      title: `${n} senders of ${mib(PART)} at once into one receiver, vs the same ${mib(n * PART)} as one file`,
      unit: 'MB/s',
      cpuPer: PER_GIB,
      prepare: async (dir) => makePartsAndWhole(dir, n, PART),
      // Only the default ferry here (the variants are in 1g/10k); its baselines are durable when it is.
      rows: (() => {
        const durable = ferryDurable('ferry', options.ferryArgs);
        const base = (plain) => (durable ? `${plain} durable` : plain);
        return [
          row(`ferry x${n}`, 'ferry', 'parallel', 'parts', { ref: base(`nc x${n}`), durable }),
          row(`ferry x${n} 1 proc`, 'ferry', 'parallel-inproc', 'parts', { ref: base(`nc x${n}`), ref2: 'ferry 1 file', durable }),
          row('ferry 1 file', 'ferry', 'file', 'whole', { ref: base('nc 1 file'), durable }),
          row(`nc x${n}`, 'nc', 'parallel', 'parts'),
          row(`nc x${n} durable`, 'nc-durable', 'parallel', 'parts', { ref: `nc x${n}`, durable: true }),
          row('nc 1 file', 'nc', 'file', 'whole'),
          row('nc 1 file durable', 'nc-durable', 'file', 'whole', { ref: 'nc 1 file', durable: true }),
        ];
      })(),
    },
    {
      id: '1byte',
      title: 'one 1-byte file: fixed cost, wall seconds (lower is better)',
      unit: 's',
      // Clock starts before the receiver is started (for daemons: before the client).
      fixedCost: true,
      prepare: async (dir) => ({ main: await makeFile(dir, 'one-byte.bin', 1) }),
      rows: oneFileRows(options),
    },
  ].filter((w) => options.only.includes(w.id));
}
