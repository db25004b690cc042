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

/**
 * Summary of a row's counted runs. The ratio is taken run by run against the
 * reference row's run of the same round (they ran back to back), then the
 * median of those ratios: less sensitive to the machine drifting.
 */
export function summarize(row, refRow) {
  const ok = row.runs.filter((r) => r.counted && r.ok);
  const values = ok.map((r) => r.value);
  const pick = (side, key) => ok.map((r) => r[side]?.[key]).filter((v) => typeof v === 'number');
  const ratios = [];
  if (refRow) {
    for (const r of ok) {
      const ref = refRow.runs.find((x) => x.counted && x.ok && x.round === r.round);
      if (ref) ratios.push(r.value / ref.value);
    }
  }
  const maxOf = (list) => (list.length ? Math.max(...list) : null);
  return {
    runsOk: ok.length,
    runsCounted: row.runs.filter((r) => r.counted).length,
    median: roundOrNull(median(values)),
    min: values.length ? Math.min(...values) : null,
    max: values.length ? Math.max(...values) : null,
    ratio: roundOrNull(median(ratios)),
    senderCpuS: median(pick('sender', 'cpuS')),
    receiverCpuS: median(pick('receiver', 'cpuS')),
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

const HEADER = ['tool', 'median', 'min-max', 'vs', 'send CPU s', 'recv CPU s', 'send RSS MiB', 'recv RSS MiB', 'runs ok'];

function tableRows(workload) {
  return workload.rows.map((row) => {
    if (row.status === 'skipped') return { label: row.label, skip: `skipped: ${row.skipReason}` };
    const s = row.summary;
    return {
      label: row.label,
      cells: [
        row.label,
        fmtValue(s.median, workload.unit),
        s.min === null ? '-' : `${fmtValue(s.min, workload.unit)}-${fmtValue(s.max, workload.unit)}`,
        s.ratio === null ? '-' : `${s.ratio.toFixed(2)}x ${row.ref}`,
        fmtNum(s.senderCpuS),
        fmtNum(s.receiverCpuS),
        fmtMiB(s.senderPeakRssKiB),
        fmtMiB(s.receiverPeakRssKiB),
        `${s.runsOk}/${s.runsCounted}`,
      ],
    };
  });
}

/** A plain-text table, one block per workload. */
export function renderTable(result) {
  const blocks = result.workloads.map((w) => ({ w, rows: tableRows(w) }));
  const widths = HEADER.map((h) => h.length);
  for (const { rows } of blocks) {
    for (const r of rows) {
      widths[0] = Math.max(widths[0], r.label.length);
      r.cells?.forEach((c, i) => (widths[i] = Math.max(widths[i], c.length)));
    }
  }
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const out = [line(HEADER), '-'.repeat(line(HEADER).length)];
  for (const { w, rows } of blocks) {
    out.push(`${w.id}: ${w.title} [${w.unit}]`);
    for (const r of rows) out.push(r.cells ? line(r.cells) : `${r.label.padEnd(widths[0])}  ${r.skip}`);
    for (const row of w.rows) for (const run of row.runs.filter((x) => !x.ok)) out.push(`  ! ${row.label} ${run.counted ? `run ${run.round}` : 'warm-up'}: ${run.error}`);
    out.push('');
  }
  return out.join('\n');
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
