/**
 * `npm run bench` end to end with tiny settings: a real 4-replica cluster, two clients, two seconds.
 * Only the shape of the result is checked; timings depend on the machine and are never asserted.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { basePortFor } from '../e2e/helpers.ts';

const BENCH = fileURLToPath(new URL('../../scripts/bench.ts', import.meta.url));
/** This file's own ports (test/e2e/helpers.ts lists every test file's). */
const BASE_PORT = basePortFor('test/bench/bench.test.ts');
const RUN_TIMEOUT_MS = 90_000;

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
      const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
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
});
