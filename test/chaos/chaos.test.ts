/**
 * Short real-process chaos runs, one per fault class (`npm run chaos` runs them all together and
 * longer). Each starts a 4-replica cluster under load, injects the class at least once, heals it and
 * audits: zero lost or duplicated transfers, correct replicas agree, supply unchanged, committing
 * resumed. Network faults need root and network namespaces, and delay/loss need tc netem; where the
 * machine lacks them the run must say so and skip that class, which is what is checked then.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FAULT_CLASSES, type FaultClass } from '../../scripts/lib/chaos-schedule.ts';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'chaos.ts');
/** Away from the e2e tests' ports and below the ephemeral range; each class gets a block of 10. */
const BASE_PORT = 28_000 + (process.pid % 20) * 100;
const RUN_TIMEOUT_MS = 180_000;

interface ChaosSummary {
  ok: boolean;
  seed: number;
  faultsByClass: Record<string, number>;
  skipped: Array<{ fault: string; reason: string }>;
  acknowledged: number;
  executed: number;
  lost: number;
  duplicated: number;
  recoveryAfterLastFaultMs: number | null;
  problems: string[];
}

async function chaos(fault: FaultClass, index: number): Promise<ChaosSummary> {
  const args = [SCRIPT, '--replicas', '4', '--clients', '3', '--duration', '1', '--faults', fault, '--json'];
  args.push('--seed', String(1_000 + index), '--base-port', String(BASE_PORT + index * 10));
  const { stdout } = await run(process.execPath, args, { timeout: RUN_TIMEOUT_MS }).catch(
    (error: { stdout?: string; stderr?: string }) => {
      // A failed run exits 1 but still prints its summary; show its narration if there is none.
      if (error.stdout?.trim()) return { stdout: error.stdout };
      throw new Error(`chaos run for ${fault} printed no summary:\n${error.stderr ?? ''}`);
    },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChaosSummary;
}

describe('chaos on a real 4-replica cluster', () => {
  it.each(FAULT_CLASSES.map((fault, index) => [fault, index] as const))(
    'loses and duplicates nothing under %s',
    async (fault, index) => {
      const summary = await chaos(fault, index);
      const skip = summary.skipped.find((entry) => entry.fault === fault);
      if (skip !== undefined) {
        // This machine cannot inject it: the runner must say why, and still pass on the rest.
        expect(skip.reason).toMatch(/root|namespaces|netem/);
        expect(summary.faultsByClass[fault]).toBeUndefined();
      } else {
        expect(summary.faultsByClass[fault]).toBeGreaterThanOrEqual(1);
        expect(summary.recoveryAfterLastFaultMs).not.toBeNull();
      }
      expect(summary.problems.join('\n'), `seed ${summary.seed}`).toBe('');
      expect(summary.ok).toBe(true);
      expect(summary.acknowledged).toBeGreaterThan(0);
      expect(summary.lost).toBe(0);
      expect(summary.duplicated).toBe(0);
      expect(summary.executed).toBeGreaterThanOrEqual(summary.acknowledged);
    },
    RUN_TIMEOUT_MS,
  );
});
