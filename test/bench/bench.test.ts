/**
 * `npm run bench` end to end with tiny settings: a real 4-replica cluster, two clients, two seconds;
 * and `--attack silent --liar backup`, the same twice over (fault-free, then with a silent backup).
 * Only the shape of the result is checked; timings depend on the machine and are never asserted.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { basePortFor } from '../e2e/helpers.ts';

const BENCH = fileURLToPath(new URL('../../scripts/bench.ts', import.meta.url));
/**
 * This file's own ports (test/e2e/helpers.ts lists every test file's): one cluster per test, and
 * the two phases of the --attack run take turns on the same ports.
 */
const BASE_PORT = basePortFor('test/bench/bench.test.ts', { clusters: 2, cluster: 0 });
const ATTACK_BASE_PORT = basePortFor('test/bench/bench.test.ts', { clusters: 2, cluster: 1 });
const RUN_TIMEOUT_MS = 90_000;

function lastJsonLine(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

describe('npm run bench', () => {
  it(
    'measures a real cluster and prints one JSON object as the last line',
    async () => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          BENCH,
          ...['--replicas', '4', '--clients', '2', '--duration', '2', '--warmup', '1'],
          ...['--base-port', String(BASE_PORT), '--json'],
        ],
        { timeout: RUN_TIMEOUT_MS },
      );
      const result = lastJsonLine(stdout);
      for (const key of [
        'txPerSec',
        'p50Ms',
        'p99Ms',
        'ceilingTxPerSec',
        'ratio',
        'rssMbMax',
        'verifyPerSecNative',
        'verifyPerSecNoble',
        'durationS',
        'loadCpuPercent',
        'cpuMsPerTransfer',
        'replicaCpuMsPerTransfer',
        'verifyMsPerTransfer',
        'otherReplicaProcesses',
      ]) {
        expect(typeof result[key], key).toBe('number');
        expect(Number.isFinite(result[key]), key).toBe(true);
      }
      expect(result['replicas']).toBe(4);
      expect(result['clients']).toBe(2);
      expect(result['cores']).toBeGreaterThanOrEqual(1);
      expect(result['txPerSec']).toBeGreaterThan(0);
      expect(result['errors']).toBe(0);
      const cpu = result['cpuPercentPerReplica'] as unknown[];
      expect(cpu).toHaveLength(4);
      for (const value of cpu) expect(typeof value).toBe('number');
      // The replicas' share is part of the whole; the ceiling counts one verification per replica.
      expect(result['replicaCpuMsPerTransfer']).toBeLessThanOrEqual(result['cpuMsPerTransfer'] as number);
      expect(result['verifyMsPerTransfer']).toBeCloseTo(
        (1000 * 4) / (result['verifyPerSecNative'] as number),
        2,
      );
    },
    RUN_TIMEOUT_MS,
  );

  it(
    '--attack silent --liar backup measures both phases and prints R, latencies and the goal',
    async () => {
      // Exit 0 although the goal may fail: only --require-goals makes a failed goal an error.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [
          BENCH,
          ...['--attack', 'silent', '--liar', 'backup'],
          ...['--replicas', '4', '--clients', '2', '--duration', '2'],
          ...['--base-port', String(ATTACK_BASE_PORT), '--json'],
        ],
        { timeout: RUN_TIMEOUT_MS },
      );
      const result = lastJsonLine(stdout);
      expect(result['attack']).toBe('silent');
      expect(result['liar']).toEqual({ role: 'backup', replica: 3 });
      for (const phase of ['faultFree', 'underAttack']) {
        const numbers = result[phase] as Record<string, unknown>;
        for (const key of ['txPerSec', 'p50Ms', 'p99Ms', 'maxMs', 'viewChanges', 'durationS']) {
          expect(typeof numbers[key], `${phase}.${key}`).toBe('number');
        }
        expect(numbers['txPerSec'], phase).toBeGreaterThan(0);
        expect(numbers['warmupS'], phase).toBe(0);
      }
      const faultFree = result['faultFree'] as Record<string, number>;
      const underAttack = result['underAttack'] as Record<string, number>;
      expect(result['R']).toBeCloseTo(underAttack['txPerSec']! / faultFree['txPerSec']!, 2);
      // A backup is not replaced: the one goal is R >= 0.8.
      expect(result).not.toHaveProperty('liarReplacedAfterS');
      const goals = result['goals'] as Array<{ name: string; pass: boolean }>;
      expect(goals.map((goal) => goal.name)).toEqual(['R >= 0.8']);
      expect(goals[0]!.pass).toBe((result['R'] as number) >= 0.8);
      expect(result['pass']).toBe(goals[0]!.pass);
    },
    RUN_TIMEOUT_MS,
  );

  it('refuses an unknown --attack behaviour with one line that lists the valid ones', async () => {
    const refused = await promisify(execFile)(process.execPath, [BENCH, '--attack', 'lie-a-lot']).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused?.code).not.toBe(0);
    const lines = refused!.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('silent');
    expect(lines[0]).toContain('censor');
  });
});
