/**
 * From runs to numbers: per-row summaries, the text table and the machine
 * description kept with the JSON.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { round } from './processes.mjs';

export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The row's number for one run: throughput, or seconds for the fixed-cost workload. */
export function metric(unit, payload, wallS) {
  if (unit === 's') return wallS;
  if (unit === 'files/s') return payload.files / wallS;
  return payload.bytes / 1e6 / wallS;
}

/** CPU seconds and peak RSS of one side (several processes: CPU summed, RSS the largest). */
export function sideUsage(procs) {
  const usages = procs.map((p) => p.usage()).filter(Boolean);
  if (usages.length === 0) return null;
  return {
    processes: procs.length,
    cpuS: round(usages.reduce((s, u) => s + u.cpuS, 0), 2),
    userS: round(usages.reduce((s, u) => s + u.userS, 0), 2),
    sysS: round(usages.reduce((s, u) => s + u.sysS, 0), 2),
    peakRssKiB: Math.max(...usages.map((u) => u.rssKiB)),
  };
}

/** Median over the rounds where both ran of row/ref, run by run (they ran back to back); null without a ref. */
function ratioTo(ok, refRow) {
  if (!refRow) return null;
  const ratios = [];
  for (const r of ok) {
    const ref = refRow.runs.find((x) => x.counted && x.ok && x.round === r.round);
    if (ref) ratios.push(r.value / ref.value);
  }
  return roundOrNull(median(ratios));
}

/**
 * Summary of a row's counted runs. Ratios are taken run by run against the
 * reference row's run of the same round, then the median of those ratios:
 * less sensitive to the machine drifting. `refRow` is the baseline (the
 * "vs" column), `ref2Row` an optional sibling row ("vs sibling").
 *
 * `cost` ({ unit, units }, from the workload's cpuPer: GiB of payload, or
 * thousands of files) turns CPU seconds into a cost: CPU seconds per unit, for each side
 * and both together. The payload is the same in every run of a row, so the
 * median of the per-run costs is the median CPU divided by `units`.
 */
export function summarize(row, refRow, ref2Row = null, cost = null) {
  const units = cost?.units ?? null;
  const ok = row.runs.filter((r) => r.counted && r.ok);
  const values = ok.map((r) => r.value);
  const pick = (side, key) => ok.map((r) => r[side]?.[key]).filter((v) => typeof v === 'number');
  const totals = ok.filter((r) => typeof r.sender?.cpuS === 'number' && typeof r.receiver?.cpuS === 'number').map((r) => r.sender.cpuS + r.receiver.cpuS);
  const maxOf = (list) => (list.length ? Math.max(...list) : null);
  const senderCpuS = median(pick('sender', 'cpuS'));
  const receiverCpuS = median(pick('receiver', 'cpuS'));
  const totalCpuS = median(totals);
  const perUnit = (cpu) => (cpu === null || !units ? null : round(cpu / units, 3));
  return {
    runsOk: ok.length,
    runsCounted: row.runs.filter((r) => r.counted).length,
    median: roundOrNull(median(values)),
    min: values.length ? Math.min(...values) : null,
    max: values.length ? Math.max(...values) : null,
    ratio: ratioTo(ok, refRow),
    ratioTo: refRow ? refRow.label : null,
    ratio2: ratioTo(ok, ref2Row),
    ratio2To: ref2Row ? ref2Row.label : null,
    senderCpuS,
    receiverCpuS,
    totalCpuS: totalCpuS === null ? null : round(totalCpuS, 2),
    cpuUnit: units ? cost.unit : null,
    cpuUnits: units ? round(units, 6) : null,
    senderCpuSPerUnit: perUnit(senderCpuS),
    receiverCpuSPerUnit: perUnit(receiverCpuS),
    totalCpuSPerUnit: perUnit(totalCpuS),
    senderPeakRssKiB: maxOf(pick('sender', 'peakRssKiB')),
    receiverPeakRssKiB: maxOf(pick('receiver', 'peakRssKiB')),
  };
}

function roundOrNull(v) {
  return v === null ? null : round(v, 4);
}

// ---------------------------------------------------------------- table

function fmtValue(v, unit) {
  if (v === null) return '-';
  if (unit === 's') return v < 1 ? v.toFixed(3) : v.toFixed(2);
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

const fmtNum = (v, digits = 2) => (v === null || v === undefined ? '-' : v.toFixed(digits));
const fmtMiB = (kib) => (kib === null || kib === undefined ? '-' : (kib / 1024).toFixed(0));

const HEADER = ['tool', 'median', 'min-max', 'vs', 'vs sibling', 'send CPU s', 'recv CPU s', 'send RSS MiB', 'recv RSS MiB', 'runs ok'];

const fmtRatio = (ratio, to) => (ratio === null || ratio === undefined ? '-' : `${ratio.toFixed(2)}x ${to}`);

/** Labels a row as flushing its files to disk when its name does not already say so. */
const shownLabel = (row) => (row.durable && !/durable/.test(row.label) ? `${row.label} *` : row.label);

function tableRows(workload) {
  return workload.rows.map((row) => {
    const label = shownLabel(row);
    if (row.status === 'skipped') return { label, skip: `skipped: ${row.skipReason}` };
    const s = row.summary;
    return {
      label,
      cells: [
        label,
        fmtValue(s.median, workload.unit),
        s.min === null ? '-' : `${fmtValue(s.min, workload.unit)}-${fmtValue(s.max, workload.unit)}`,
        // A baseline that did not run (skipped, or not in --tools) shows as "-", never as another baseline.
        fmtRatio(s.ratio, s.ratioTo),
        fmtRatio(s.ratio2, s.ratio2To),
        fmtNum(s.senderCpuS),
        fmtNum(s.receiverCpuS),
        fmtMiB(s.senderPeakRssKiB),
        fmtMiB(s.receiverPeakRssKiB),
        `${s.runsOk}/${s.runsCounted}`,
      ],
    };
  });
}

/** Aligns blocks of rows under one header (first column left, the rest right). */
function renderBlocks(header, blocks, renderExtra = () => []) {
  const widths = header.map((h) => h.length);
  for (const { rows } of blocks) {
    for (const r of rows) {
      widths[0] = Math.max(widths[0], r.label.length);
      r.cells?.forEach((c, i) => (widths[i] = Math.max(widths[i], c.length)));
    }
  }
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(header), '-'.repeat(line(header).length)];
  for (const { w, title, rows } of blocks) {
    out.push(title);
    for (const r of rows) out.push(r.cells ? line(r.cells) : `${r.label.padEnd(widths[0])}  ${r.skip}`);
    out.push(...renderExtra(w));
    out.push('');
  }
  return out.join('\n');
}

/** The main table, one block per workload. */
export function renderTable(result) {
  const blocks = result.workloads.map((w) => ({ w, title: `${w.id}: ${w.title} [${w.unit}]`, rows: tableRows(w) }));
  const failures = (w) => w.rows.flatMap((row) => row.runs.filter((x) => !x.ok).map((run) => `  ! ${row.label} ${run.counted ? `run ${run.round}` : 'warm-up'}: ${run.error}`));
  return renderBlocks(HEADER, blocks, failures);
}

const COST_HEADER = ['tool', 'per', 'send CPU s', 'recv CPU s', 'both CPU s', 'both vs'];

/**
 * The cost table: CPU seconds per GiB (or per 1,000 files) for each side,
 * every row that ran with GNU time, workloads with a cost unit only (not the
 * fixed-cost one). "both vs" is the ratio of the medians of both sides' CPU
 * to the same baseline as the "vs" column of the main table (>1: more CPU).
 */
export function renderCostTable(result) {
  const blocks = [];
  for (const w of result.workloads) {
    if (!w.cpuUnit) continue;
    const byLabel = new Map(w.rows.map((r) => [r.label, r]));
    const rows = w.rows
      .filter((row) => row.status !== 'skipped' && row.summary?.totalCpuSPerUnit !== null && row.summary?.totalCpuSPerUnit !== undefined)
      .map((row) => {
        const s = row.summary;
        const ref = s.ratioTo ? byLabel.get(s.ratioTo)?.summary : null;
        const vs = ref?.totalCpuS ? fmtRatio(round(s.totalCpuS / ref.totalCpuS, 4), s.ratioTo) : '-';
        const label = shownLabel(row);
        return { label, cells: [label, w.cpuUnit, fmtNum(s.senderCpuSPerUnit), fmtNum(s.receiverCpuSPerUnit), fmtNum(s.totalCpuSPerUnit), vs] };
      });
    if (rows.length) blocks.push({ w, title: `${w.id}: CPU seconds per ${w.cpuUnit === 'GiB' ? 'GiB (2^30 bytes) of payload' : '1,000 files'}`, rows });
  }
  return blocks.length ? renderBlocks(COST_HEADER, blocks) : '';
}

// ---------------------------------------------------------------- machine

function git(args, cwd) {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function describeMachine({ repo, versions, gnuTime }) {
  const cpus = os.cpus();
  const dirty = git(['status', '--porcelain', '--', 'src'], repo);
  return {
    nproc: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    loadAverageAtStart: os.loadavg().map((n) => round(n, 2)),
    ferryCommit: git(['rev-parse', '--short', 'HEAD'], repo),
    ferrySrcModified: dirty === null ? null : dirty !== '',
    gnuTime,
    versions,
  };
}
