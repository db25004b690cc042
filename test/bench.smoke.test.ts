/**
 * The benchmark harness (bench/run.mjs) still runs end to end, at tiny sizes.
 * Only its shape is checked, never its timings: this machine is shared.
 * nc and nc durable are included when installed; without them the harness
 * reports them as skipped, which is fine here (the ferry rows then have no
 * ratio, rather than a ratio to a baseline of another kind).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const HARNESS = fileURLToPath(new URL('../bench/run.mjs', import.meta.url));
const LIMIT_MS = 18_000;

interface Summary {
  ratio: number | null;
  ratioTo: string | null;
  ratio2: number | null;
  ratio2To: string | null;
  cpuUnit: string | null;
  senderCpuSPerUnit: number | null;
  receiverCpuSPerUnit: number | null;
  totalCpuSPerUnit: number | null;
}
interface Row {
  label: string;
  ref: string | null;
  ref2: string | null;
  durable: boolean;
  status: 'ok' | 'failed' | 'skipped';
  summary?: Summary;
  runs: Array<{ counted: boolean; ok: boolean; value?: number }>;
}
interface Results {
  schema: number;
  machine: { nproc: number; node: string; kernel: string; gnuTime: boolean };
  workloads: Array<{ id: string; unit: string; cpuUnit: string | null; rows: Row[] }>;
}

/** What each workload's rows must be, for --tools ferry,ferry-nofsync,nc,nc-durable. */
const EXPECTED = {
  '1g': { cpuUnit: 'GiB', labels: ['ferry', 'ferry no-fsync', 'nc', 'nc durable'] },
  '10k': { cpuUnit: '1k files', labels: ['ferry', 'ferry no-fsync', 'tar|nc', 'tar|nc durable'] },
  '1byte': { cpuUnit: null, labels: ['ferry', 'ferry no-fsync', 'nc', 'nc durable'] },
} as const;

/** Runs the harness; on overrun asks it to clean up (SIGTERM), then kills it. */
function runHarness(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HARNESS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      reject(new Error(`bench/run.mjs did not finish within ${LIMIT_MS / 1000} s\n${stderr}`));
    }, LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('bench harness: tiny run writes a table and JSON with the requested workloads', { timeout: 20_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-bench-smoke-'));
  try {
    const out = join(dir, 'results.json');
    // No warm-up: only the shape is checked, and it keeps the run well inside the limit.
    const args = ['--size-mb', '2', '--files', '20', '--runs', '1', '--warmup', '0', '--only', '1g,10k,1byte'];
    const result = await runHarness([...args, '--tools', 'ferry,ferry-nofsync,nc,nc-durable', '--tmpdir', dir, '--out', out]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^ferry \*\s+\d/m); // a table row for (durable) ferry with a number
    expect(result.stdout).toMatch(/^ferry no-fsync\s+\d/m);
    for (const id of Object.keys(EXPECTED)) expect(result.stdout).toContain(`${id}:`);

    const json = JSON.parse(await readFile(out, 'utf8')) as Results;
    expect(json.schema).toBe(2);
    expect(json.machine.nproc).toBeGreaterThan(0);
    expect(json.machine.node).toBe(process.version);
    expect(json.workloads.map((w) => w.id)).toEqual(Object.keys(EXPECTED));
    if (json.machine.gnuTime) expect(result.stdout).toContain('10k: CPU seconds per 1,000 files');
    for (const workload of json.workloads) {
      const want = EXPECTED[workload.id as keyof typeof EXPECTED];
      expect(workload.cpuUnit).toBe(want.cpuUnit);
      expect(workload.rows.map((r) => r.label)).toEqual(want.labels);
      const [ferry, noFsync, plainBase, durableBase] = workload.rows as [Row, Row, Row, Row];
      // ferry fsyncs by default: compared with the durable baseline; --no-fsync with the plain one.
      expect(ferry).toMatchObject({ durable: true, ref: durableBase.label, ref2: null });
      expect(noFsync).toMatchObject({ durable: false, ref: plainBase.label, ref2: 'ferry' });
      expect(durableBase).toMatchObject({ durable: true, ref: plainBase.label });
      for (const row of [ferry, noFsync]) {
        expect(row.status).toBe('ok');
        const counted = row.runs.filter((r) => r.counted);
        expect(counted).toHaveLength(1);
        expect(counted[0]!.ok).toBe(true);
        expect(counted[0]!.value).toBeGreaterThan(0);
        const s = row.summary!;
        expect(s.cpuUnit).toBe(want.cpuUnit);
        if (want.cpuUnit && json.machine.gnuTime) expect(s.totalCpuSPerUnit).toBeGreaterThan(0);
        else expect(s.totalCpuSPerUnit).toBeNull();
      }
      expect(noFsync.summary).toMatchObject({ ratio2To: 'ferry' });
      expect(noFsync.summary!.ratio2).toBeGreaterThan(0);
      for (const [row, base] of [[ferry, durableBase], [noFsync, plainBase]] as const) {
        expect(['ok', 'skipped']).toContain(base.status);
        // A ratio only to the baseline of the same kind, and only when that baseline ran.
        if (base.status === 'ok') expect(row.summary).toMatchObject({ ratioTo: base.label, ratio: expect.any(Number) });
        else expect(row.summary).toMatchObject({ ratioTo: null, ratio: null });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
