/**
 * What is measured. A workload makes its data (once per invocation) and
 * lists rows: which tool sends which payload in which mode, and which row
 * it is compared to ("vs" column, normally plain nc: the raw ceiling).
 *
 * unit: 'MB/s' (10^6 bytes per second, higher is better), 'files/s'
 * (higher is better) or 's' (wall seconds, lower is better).
 */
import { MiB, makeDir, makeFile, makePartsAndWhole } from './data.mjs';

const SMALL_FILE = 4096;
const PART = MiB;

function row(label, tool, mode, payload, ref) {
  return { label, tool, mode, payload, ref };
}

/** ferry, nc, scp and rsync each sending the `main` payload as one file. */
function oneFileRows() {
  return [row('ferry', 'ferry', 'file', 'main', 'nc'), row('ferry plain', 'ferry-plain', 'file', 'main', 'ferry'), row('nc', 'nc', 'file', 'main', null), row('scp', 'scp', 'file', 'main', 'nc'), row('rsync', 'rsync', 'file', 'main', 'nc')];
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
      prepare: async (dir) => ({ main: await makeFile(dir, 'big.bin', big) }),
      rows: oneFileRows(),
    },
    {
      id: '4g',
      title: `one ${mib(4 * big)} file (does memory stay flat?)`,
      unit: 'MB/s',
      prepare: async (dir) => ({ main: await makeFile(dir, 'huge.bin', 4 * big) }),
      rows: oneFileRows(),
    },
    {
      id: '10k',
      title: `${options.files} files of ${mib(SMALL_FILE)} in one directory`,
      unit: 'files/s',
      prepare: async (dir) => ({ main: await makeDir(dir, 'small', options.files, SMALL_FILE) }),
      rows: [row('ferry', 'ferry', 'dir', 'main', 'tar|nc'), row('tar|nc', 'nc', 'dir', 'main', null), row('rsync', 'rsync', 'dir', 'main', 'tar|nc')],
    },
    {
      id: 'concurrent',
      title: `${n} senders of ${mib(PART)} at once into one receiver, vs the same ${mib(n * PART)} as one file`,
      unit: 'MB/s',
      prepare: async (dir) => makePartsAndWhole(dir, n, PART),
      rows: [
        row(`ferry x${n}`, 'ferry', 'parallel', 'parts', `nc x${n}`),
        row(`ferry x${n} 1 proc`, 'ferry', 'parallel-inproc', 'parts', 'ferry 1 file'),
        row('ferry 1 file', 'ferry', 'file', 'whole', 'nc 1 file'),
        row(`nc x${n}`, 'nc', 'parallel', 'parts', null),
        row('nc 1 file', 'nc', 'file', 'whole', null),
      ],
    },
    {
      id: '1byte',
      title: 'one 1-byte file: fixed cost, wall seconds (lower is better)',
      unit: 's',
      // Clock starts before the receiver is started (for daemons: before the client).
      fixedCost: true,
      prepare: async (dir) => ({ main: await makeFile(dir, 'one-byte.bin', 1) }),
      rows: oneFileRows(),
    },
  ].filter((w) => options.only.includes(w.id));
}
