/**
 * Runs the conformance kit (scripts/conformance.mjs, docs/conformance.md)
 * against ferry's built CLI in both roles, as a user of the kit would: a
 * child process per role, its text output read line by line. Any failing
 * case fails the test, except those whose case data says `known` (a ferry
 * bug with a fix on the way): those are reported, not failed, so the kit
 * can hold the document's rule before the code does.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const KIT = `${root}scripts/conformance.mjs`;
const CASES = `${root}fixtures/conformance`;
const CLI = `${root}dist/ferry.mjs`;
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);

// The node running the tests runs ferry too, so the kit checks this build with this runtime.
const node = JSON.stringify(process.execPath);
const ROLES = {
  receiver: `${node} ${JSON.stringify(CLI)} receive --insecure --once --json --host 127.0.0.1 --port {port} --dir {dir}`,
  sender: `${node} ${JSON.stringify(CLI)} send {files} --to 127.0.0.1:{port} --insecure --retries 0`,
} as const;

/** Every case's role and `known` mark, read from the same JSON the kit reads. */
function caseData(): Map<string, { role: string; known?: string }> {
  const cases = new Map<string, { role: string; known?: string }>();
  for (const file of readdirSync(CASES).filter((f) => f.endsWith('.json'))) {
    const doc = JSON.parse(readFileSync(`${CASES}/${file}`, 'utf8')) as { role: string; cases: Array<{ name: string; role?: string; known?: string }> };
    for (const c of doc.cases) cases.set(c.name, { role: c.role ?? doc.role, ...(c.known ? { known: c.known } : {}) });
  }
  return cases;
}

interface KitRun {
  code: number | null;
  results: Array<{ name: string; ok: boolean; why: string }>;
  closing: string;
  stderr: string;
}

/** Runs the kit for one role; the kit bounds every wait itself, the timer here only guards against a hung kit. */
function runKit(role: keyof typeof ROLES, ms: number): Promise<KitRun> {
  return new Promise((resolve, reject) => {
    // ferry's receiver prints its port (--json), so the kit need not pick a free one another test could take first.
    const child = spawn(process.execPath, [KIT, `--${role}`, ROLES[role], ...(role === 'receiver' ? ['--port-from-json'] : [])], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the kit did not finish within ${ms} ms; so far:\n${stdout}${stderr}`));
    }, ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = stdout.trimEnd().split('\n');
      const results = lines.flatMap((line) => {
        const m = /^(ok|not ok) (\S+)(?:: (.*))?$/.exec(line);
        return m ? [{ name: m[2]!, ok: m[1] === 'ok', why: m[3] ?? '' }] : [];
      });
      resolve({ code, results, closing: lines.at(-1) ?? '', stderr });
    });
  });
}

const cases = caseData();

test('docs/conformance.md lists every case', () => {
  const doc = readFileSync(`${root}docs/conformance.md`, 'utf8');
  expect([...cases.keys()].filter((name) => !doc.includes(`\`${name}\``))).toEqual([]);
});

describe('the conformance kit against ferry', () => {
  for (const role of ['receiver', 'sender'] as const) {
    test(`ferry as the ${role} under test`, { timeout: 120_000 }, async () => {
      const run = await runKit(role, 110_000);
      const expected = [...cases].filter(([, c]) => c.role === role).map(([name]) => name);
      expect(run.stderr).toBe('');
      // Every case of this role ran, once, and the closing line counts them.
      expect(run.results.map((r) => r.name).sort()).toEqual(expected.sort());
      const failed = run.results.filter((r) => !r.ok);
      expect(run.closing).toBe(`${run.results.length - failed.length} passed, ${failed.length} failed`);
      expect(run.code).toBe(failed.length === 0 ? 0 : 1);

      const knownFailures = failed.filter((r) => cases.get(r.name)?.known);
      for (const r of knownFailures) console.warn(`conformance: known failure ${r.name} (${cases.get(r.name)!.known}): ${r.why}`);
      for (const r of run.results.filter((r) => r.ok && cases.get(r.name)?.known)) {
        console.warn(`conformance: ${r.name} passes now: drop its "known" mark (${cases.get(r.name)!.known})`);
      }
      const realFailures = failed.filter((r) => !cases.get(r.name)?.known).map((r) => `${r.name}: ${r.why}`);
      expect(realFailures).toEqual([]);
    });
  }
});
