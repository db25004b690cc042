/**
 * Command-line flags (and BENCH_* environment variables, for CI or npm
 * scripts where flags are awkward). A flag wins over its variable.
 */
import { tmpdir } from 'node:os';

export const WORKLOAD_IDS = ['1g', '4g', '10k', 'concurrent', '1byte'];
/**
 * ferry-nofsync / ferry-plain-nofsync: the receiver runs --no-fsync (on top
 * of --ferry-args), so one run shows ferry with and without the flush.
 * nc-durable: nc (tar|nc for a tree) whose receiver flushes what it wrote
 * before exiting, the baseline for ferry rows that fsync.
 */
export const TOOL_NAMES = ['ferry', 'ferry-plain', 'ferry-nofsync', 'ferry-plain-nofsync', 'nc', 'nc-durable', 'scp', 'rsync'];

/** name -> [env variable, default, parser] */
const SPEC = {
  only: ['BENCH_ONLY', WORKLOAD_IDS.join(','), listOf(WORKLOAD_IDS, 'workload')],
  tools: ['BENCH_TOOLS', TOOL_NAMES.join(','), listOf(TOOL_NAMES, 'tool')],
  runs: ['BENCH_RUNS', '3', positiveInt('runs', 1)],
  warmup: ['BENCH_WARMUP', '1', positiveInt('warmup', 0)],
  'size-mb': ['BENCH_SIZE_MB', '1024', positiveInt('size-mb', 1)],
  files: ['BENCH_FILES', '10000', positiveInt('files', 1)],
  senders: ['BENCH_SENDERS', '100', positiveInt('senders', 1)],
  'ferry-args': ['BENCH_FERRY_ARGS', '', (v) => v.split(/\s+/).filter(Boolean)],
  tmpdir: ['BENCH_TMPDIR', tmpdir(), (v) => v],
  out: ['BENCH_OUT', '', (v) => v],
  'timeout-s': ['BENCH_TIMEOUT_S', '0', positiveInt('timeout-s', 0)],
};

export const USAGE = `usage: npm run bench -- [flags]    (or: node bench/run.mjs [flags])

  --only LIST        workloads, comma-separated (default: all): ${WORKLOAD_IDS.join(',')}
  --tools LIST       tools to compare (default: all): ${TOOL_NAMES.join(',')}
  --runs N           counted runs per tool and workload (default 3)
  --warmup N         uncounted warm-up runs per tool before those (default 1)
  --size-mb N        size of the "1g" file in MiB (default 1024); "4g" is 4 times it
  --files N          number of 4 KiB files in "10k" (default 10000)
  --senders N        concurrent senders of 1 MiB in "concurrent" (default 100)
  --ferry-args STR   extra flags for \`ferry receive\` (all ferry tools), e.g. "--no-fsync"
                     (then the ferry/ferry-plain rows are compared with nc, not nc durable)
  --tmpdir DIR       where data and received files go (default: the OS temp dir)
  --out FILE         JSON results file (default bench/results/YYYY-MM-DD.json)
  --timeout-s N      give up on one run after N seconds (default: from its size)

Each flag also reads from BENCH_<NAME> (e.g. BENCH_RUNS=5, BENCH_SIZE_MB=64).`;

export class UsageError extends Error {}

export function parseOptions(argv, env = process.env) {
  const given = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { help: true };
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in SPEC)) throw new UsageError(`unknown argument ${arg}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${m[1]} needs a value`);
    given[m[1]] = value;
  }
  const options = {};
  for (const [name, [envName, fallback, parse]] of Object.entries(SPEC)) {
    const raw = given[name] ?? env[envName] ?? fallback;
    options[camel(name)] = parse(raw);
  }
  return options;
}

function camel(name) {
  return name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
}

function listOf(allowed, what) {
  return (value) => {
    const items = value.split(',').map((s) => s.trim()).filter(Boolean);
    for (const item of items) if (!allowed.includes(item)) throw new UsageError(`unknown ${what} "${item}" (known: ${allowed.join(', ')})`);
    if (items.length === 0) throw new UsageError(`name at least one ${what}`);
    return items;
  };
}

function positiveInt(name, min) {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, not "${value}"`);
    return n;
  };
}
