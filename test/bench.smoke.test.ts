/**
 * The benchmark harness (bench/run.mjs) still runs end to end, at tiny sizes.
 * Only its shape is checked, never its timings: this machine is shared.
 * nc is included when installed; without it the harness reports it as
 * skipped, which is fine here.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const HARNESS = fileURLToPath(new URL('../bench/run.mjs', import.meta.url));
const LIMIT_MS = 18_000;

interface Row {
  label: string;
  status: 'ok' | 'failed' | 'skipped';
  runs: Array<{ counted: boolean; ok: boolean; value?: number }>;
}
interface Results {
  machine: { nproc: number; node: string; kernel: string };
  workloads: Array<{ id: string; unit: string; rows: Row[] }>;
}

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
    const result = await runHarness(['--size-mb', '2', '--runs', '1', '--only', '1g,1byte', '--tools', 'ferry,nc', '--tmpdir', dir, '--out', out]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^ferry\s+\d/m); // a table row for ferry with a number
    expect(result.stdout).toContain('1g:');
    expect(result.stdout).toContain('1byte:');

    const json = JSON.parse(await readFile(out, 'utf8')) as Results;
    expect(json.machine.nproc).toBeGreaterThan(0);
    expect(json.machine.node).toBe(process.version);
    expect(json.workloads.map((w) => w.id)).toEqual(['1g', '1byte']);
    for (const workload of json.workloads) {
      expect(workload.rows.map((r) => r.label)).toEqual(['ferry', 'nc']);
      const [ferry, nc] = workload.rows as [Row, Row];
      expect(ferry.status).toBe('ok');
      const counted = ferry.runs.filter((r) => r.counted);
      expect(counted).toHaveLength(1);
      expect(counted[0]!.ok).toBe(true);
      expect(counted[0]!.value).toBeGreaterThan(0);
      expect(['ok', 'skipped']).toContain(nc.status);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
