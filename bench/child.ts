/**
 * What the benchmark scripts share: measuring a child process (peak RSS from /proc, which starts afresh at
 * exec), running one and reading the JSON line it prints, and keeping the fastest of several runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A line of /proc/self/status in MiB (NaN where there is none). */
export function procStatus(key: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${key}:\\s*(\\d+)\\s*kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Resets this process's peak-RSS mark (Linux ≥ 4.0), so VmHWM afterwards covers only what follows. */
export function resetPeak(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    /* not Linux: the peak then includes what came before */
  }
}

/** Runs a command and parses the last line it printed as JSON; a timeout or failure becomes a reason. */
export function spawnJson<T>(cmd: string, args: string[], timeoutS: number, env?: NodeJS.ProcessEnv): Outcome<T> {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    env: env ?? process.env,
    timeout: timeoutS * 1000,
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { ok: false, reason: `capped at ${timeoutS} s` };
  if (r.error) return { ok: false, reason: r.error.message };
  if (r.status !== 0) return { ok: false, reason: (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`).slice(0, 200) };
  return { ok: true, value: JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as T };
}

/** The fastest successful run, with the highest peak RSS seen over all runs. */
export function fastest<T extends { seconds: number; maxRssMiB: number }>(runs: readonly Outcome<T>[]): Outcome<T> {
  const ok = runs.filter((r): r is { ok: true; value: T } => r.ok).map((r) => r.value);
  if (ok.length === 0) return runs[0] ?? { ok: false, reason: 'not run' };
  const best = ok.reduce((x, y) => (y.seconds < x.seconds ? y : x));
  return { ok: true, value: { ...best, maxRssMiB: Math.max(...ok.map((r) => r.maxRssMiB)) } };
}

/** Fraction of all units whose permutation equals the planted truth (null without one), and the unit count. */
export function recovered(perms: Readonly<Record<string, Int32Array>>, truth: Readonly<Record<string, Int32Array>> | null): { fraction: number | null; units: number } {
  let units = 0;
  for (const p of Object.values(perms)) units += p.length;
  if (!truth) return { fraction: null, units };
  let hit = 0;
  for (const [p, want] of Object.entries(truth)) for (let i = 0; i < want.length; i++) if (perms[p][i] === want[i]) hit++;
  return { fraction: hit / units, units };
}
