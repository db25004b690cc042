#!/usr/bin/env node
/**
 * ferry's benchmark harness: `npm run bench` (see bench/README.md).
 *
 * For each workload, every available tool sends the same data over
 * loopback, in rounds: one (or --warmup) uncounted round, then --runs
 * counted rounds, each round running the tools back to back (A B C A B C),
 * so slow drift of a shared 2-CPU machine hits every tool alike.
 *
 * Each run gets a fresh, empty destination directory and fresh ports; the
 * destination is deleted after the run and `sync` flushes what is left, so
 * no run pays for the previous one's writeback.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { contentChecked, verifyDestination } from './lib/data.mjs';
import { parseOptions, USAGE, UsageError } from './lib/options.mjs';
import { configureProcesses, hasGnuTime, killEverything, round, Scope, withTimeout } from './lib/processes.mjs';
import { describeMachine, metric, renderCostTable, renderTable, sideUsage, summarize } from './lib/report.mjs';
import { makeTools } from './lib/tools.mjs';
import { defineWorkloads, mib } from './lib/workloads.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'dist', 'ferry.mjs');

const DESTINATION_POLICY =
  'each run writes into a fresh empty directory, deleted after the run (then sync); source files are hot in the page cache';

const log = (text) => process.stderr.write(`${text}\n`);

// ---------------------------------------------------------------- cleanup

let workDir = null;

/** Synchronous, so it also works from 'exit' and signal handlers. */
function cleanup() {
  killEverything();
  if (workDir) {
    rmSync(workDir, { recursive: true, force: true });
    workDir = null;
  }
}

function installCleanupHandlers() {
  process.on('exit', cleanup);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(signal, () => {
      log(`\nbench: ${signal}, stopping every child and deleting ${workDir ?? 'temp files'}`);
      cleanup();
      process.exit(code);
    });
  }
}

// ---------------------------------------------------------------- one run

/** Generous by default: 30 s, plus 10 MB/s, plus time to start every sender process. */
function runDeadlineMs(options, payload, row) {
  if (options.timeoutS > 0) return options.timeoutS * 1000;
  const perProcess = row.mode === 'parallel' ? payload.files * 1000 : 0;
  return 30_000 + payload.bytes / 10e6 * 1000 + payload.files * 10 + perProcess;
}

let runCounter = 0;

/** Runs one transfer, checks the destination, and returns its record (never throws). */
async function runOnce({ options, tools, workload, row, payload, round: roundNo }) {
  const dst = join(workDir, `dst-${++runCounter}`);
  await mkdir(dst);
  const scope = new Scope();
  const record = { round: roundNo, counted: roundNo > 0, ok: false };
  try {
    const transfer = tools[row.tool].transfer[row.mode](scope, payload, dst);
    transfer.catch(() => {}); // after a timeout it fails later, as its processes are killed
    const ms = runDeadlineMs(options, payload, row);
    const t = await withTimeout(transfer, ms, () => void scope.killAll(), row.label);
    const problem = await verifyDestination(payload, dst);
    if (problem) throw new Error(problem);
    // The fixed-cost clock starts with the receiver, unless that is a daemon (already up in real use).
    const startAt = workload.fixedCost && !t.daemon ? t.receiverStartedAt : t.senderStartedAt;
    record.wallS = round((t.doneAt - startAt) / 1000, 4);
    record.value = round(metric(workload.unit, payload, record.wallS), 4);
    record.sender = sideUsage(t.senders);
    record.receiver = sideUsage(t.receivers);
    record.ok = true;
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
  } finally {
    await scope.killAll();
    await rm(dst, { recursive: true, force: true });
    spawnSync('sync', { timeout: 120_000 });
  }
  return record;
}

function describeRun(workload, row, record) {
  const when = record.counted ? `run ${record.round}` : 'warm-up';
  const what = record.ok ? `${record.value.toFixed(workload.unit === 's' ? 3 : 1)} ${workload.unit}` : `FAILED: ${record.error}`;
  return `  ${workload.id.padEnd(10)} ${when.padEnd(7)} ${row.label.padEnd(20)} ${what}`;
}

// ---------------------------------------------------------------- one workload

/** Why a row cannot run here, or null. */
function skipReason(row, tools, toolStatus) {
  if (toolStatus[row.tool]) return toolStatus[row.tool];
  return tools[row.tool].unsupported?.[row.mode] ?? null;
}

async function runWorkload({ options, tools, toolStatus, workload }) {
  const rows = workload.rows
    .filter((row) => options.tools.includes(row.tool))
    .map((row) => ({ ...row, skipReason: skipReason(row, tools, toolStatus), runs: [] }));
  const active = rows.filter((row) => !row.skipReason);
  let payloads = {};
  const dataDir = join(workDir, `data-${workload.id}`);
  if (active.length > 0) {
    log(`${workload.id}: writing test data (${workload.title})`);
    await mkdir(dataDir, { recursive: true });
    payloads = await workload.prepare(dataDir);
  }
  for (let r = 1 - options.warmup; r <= options.runs; r++) {
    for (const row of active) {
      const payload = payloads[row.payload];
      const record = await runOnce({ options, tools, workload, row, payload, round: r });
      row.runs.push(record);
      log(describeRun(workload, row, record));
    }
  }
  const anyPayload = Object.values(payloads)[0];
  await rm(dataDir, { recursive: true, force: true });

  for (const row of rows) {
    if (row.skipReason) {
      row.status = 'skipped';
      continue;
    }
    // A baseline that did not run gives no ratio: never a fallback to a baseline of another kind.
    const find = (label) => (label ? rows.find((x) => x.label === label && !x.skipReason) ?? null : null);
    const payload = payloads[row.payload];
    const cost = workload.cpuPer && payload ? { unit: workload.cpuPer.unit, units: workload.cpuPer.of(payload) } : null;
    row.summary = summarize(row, find(row.ref), find(row.ref2), cost);
    row.status = row.runs.every((r) => r.ok) ? 'ok' : 'failed';
  }
  return {
    id: workload.id,
    title: workload.title,
    unit: workload.unit,
    cpuUnit: workload.cpuPer?.unit ?? null,
    bytes: anyPayload?.bytes ?? null,
    contentChecked: anyPayload ? contentChecked(anyPayload) : null,
    rows,
  };
}

// ---------------------------------------------------------------- main

function today() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Which tools can run, and sets up those that need it (sshd keys). A missing tool is skipped, never fatal. */
async function checkTools(options, tools) {
  const status = {};
  for (const name of options.tools) {
    const tool = tools[name];
    let reason = tool.check();
    if (!reason && tool.setup) {
      try {
        await tool.setup();
      } catch (err) {
        reason = `setup failed: ${err.message}`;
      }
    }
    if (reason) {
      status[name] = reason;
      log(`bench: ${name} skipped: ${reason}`);
    }
  }
  return status;
}

function subdir(name) {
  const dir = join(workDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function writeJson(file, data) {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const started = performance.now();
  installCleanupHandlers();
  mkdirSync(options.tmpdir, { recursive: true });
  workDir = mkdtempSync(join(options.tmpdir, 'ferry-bench-'));
  const gnuTime = hasGnuTime();
  if (!gnuTime) log('bench: GNU time not found: CPU and RSS columns stay empty (install: apt-get install time)');
  configureProcesses({ usage: gnuTime ? subdir('usage') : null, logs: subdir('logs') });

  const tools = makeTools({ cli: CLI, receiveArgs: options.ferryArgs, workDir });
  const toolStatus = await checkTools(options, tools);
  const versions = {};
  for (const name of options.tools) if (!toolStatus[name]) versions[name] = tools[name].version?.() ?? null;
  const machine = describeMachine({ repo: REPO, versions, gnuTime });
  log(`bench: ${machine.nproc} CPUs, node ${machine.node}, ${machine.kernel}; ${options.warmup} warm-up + ${options.runs} counted runs per tool, alternating; temp dir ${workDir}`);

  const workloads = [];
  for (const workload of defineWorkloads(options)) workloads.push(await runWorkload({ options, tools, toolStatus, workload }));

  const result = {
    // 2: rows carry ref2 and durable; summaries carry ratioTo, ratio2, CPU per unit (bench/README.md).
    schema: 2,
    date: new Date().toISOString(),
    durationS: round((performance.now() - started) / 1000, 1),
    machine: { ...machine, loadAverageAtEnd: loadavg().map((n) => round(n, 2)) },
    options: { ...options, bigFile: mib(options.sizeMb * 1024 * 1024) },
    notes: {
      destination: DESTINATION_POLICY,
      ferryReceive: `ferry receive ${options.ferryArgs.join(' ') || '(default flags: fsyncs each file)'}; the ferry-nofsync and ferry-plain-nofsync tools add --no-fsync`,
      wallClock: 'from starting the sender(s) to every process exited; fixed cost (1byte): from starting the receiver, or the client when the receiver is a daemon',
      cpu: 'user+sys seconds from GNU time, summed over the processes of that side (children included); median of counted runs',
      cpuPerUnit: 'the median CPU seconds of a side (and of both sides, summed run by run) divided by the payload in the workload\'s cpuUnit: GiB (2^30 bytes) or 1,000 files',
      durable: 'durable rows have fdatasync()ed every received file before the receiver exits: ferry by default, nc durable (nc > FILE && sync -d FILE), tar|nc durable (tar x, then sync -d on every file received)',
      ratios: 'ratio: median of per-round ratios to ratioTo, the baseline: the durable one (nc durable, tar|nc durable) for ferry rows that fsync, the plain one for --no-fsync; ratio2: the same against ratio2To, a sibling ferry row (encryption or fsync cost)',
      rss: 'peak resident set (GNU time %M) of the largest single process of that side, max over counted runs',
      daemons: 'sshd -d and rsync --daemon are started per run; their CPU includes start-up and the forked workers',
      verification: 'sizes of every destination file; contents (SHA-256) too for payloads up to 256 MiB; ferry also by its exit code',
    },
    workloads,
  };

  const table = renderTable(result);
  console.log(`\nferry bench ${today()}: ${machine.nproc} CPUs (${machine.cpuModel}), node ${machine.node}, ${machine.kernel}`);
  console.log(`${options.warmup} warm-up + ${options.runs} counted runs per tool, alternating; ${DESTINATION_POLICY}.`);
  console.log(`ferry receive extra flags: ${options.ferryArgs.join(' ') || 'none'}; rows marked * and "durable" rows flush every file to disk before the receiver exits\n`);
  console.log(table);
  console.log('vs: median of per-round ratios to the named baseline: ferry rows marked * against the durable one, the others against the plain one.');
  console.log('vs sibling: the same against another ferry row (plain vs ferry: encryption; no-fsync vs ferry: the flush). For seconds >1 is slower; for rates <1 is slower.');
  console.log('CPU: user+sys, summed over a side\'s processes; RSS: the largest single process.\n');
  const costTable = renderCostTable(result);
  if (costTable) {
    console.log(costTable);
    console.log('both vs: both sides\' CPU against the same baseline as vs above (>1: more CPU for the same work).\n');
  }
  console.log(`Took ${result.durationS} s.`);

  const out = options.out ? resolve(options.out) : join(REPO, 'bench', 'results', `${today()}.json`);
  writeJson(out, result);
  console.log(`results: ${out}`);

  const failures = workloads.flatMap((w) => w.rows).filter((r) => r.status === 'failed').length;
  if (failures) log(`bench: ${failures} row(s) had failed runs (see the ! lines)`);
  return failures ? 1 : 0;
}

main().then(
  (code) => {
    cleanup();
    process.exit(code);
  },
  (err) => {
    log(err instanceof UsageError ? `bench: ${err.message}\n\n${USAGE}` : `bench: ${err?.stack ?? err}`);
    cleanup();
    process.exit(2);
  },
);
