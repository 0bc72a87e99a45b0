/**
 * Each lying behaviour, run inside a real replica process of a 4-replica cluster: transfers keep
 * committing with the same result everywhere. (The two behaviours that need the liar to become a
 * new primary, fake-view-change and bad-new-view, are exercised by the simulator scenarios.)
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { readKeyFile } from '../../src/index.ts';
import { connectWhenUp } from './helpers.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'pbft.js');
const BASE_PORT = 22_000 + (process.pid % 25) * 100;
const TRANSFERS = 4;

const SCENARIOS: Array<{ behaviour: ByzantineBehaviour; liar: number }> = [
  { behaviour: 'silent', liar: 0 },
  { behaviour: 'equivocate', liar: 0 },
  { behaviour: 'bad-digest', liar: 0 },
  { behaviour: 'bad-signature', liar: 0 },
  { behaviour: 'replay', liar: 3 },
  { behaviour: 'unprepared-votes', liar: 3 },
  { behaviour: 'fake-checkpoint', liar: 3 },
  { behaviour: 'flood', liar: 3 },
];

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

describe('lying replicas on real processes', () => {
  it.each(SCENARIOS.map((scenario, index) => [scenario.behaviour, scenario, index] as const))(
    'the cluster keeps committing while one replica lies: %s',
    async (_name, { behaviour, liar }, index) => {
      const dir = await mkdtemp(join(tmpdir(), `pbft-${behaviour}-`));
      const children: ChildProcess[] = [];
      cleanup.push(async () => {
        for (const child of children) child.kill('SIGKILL');
        await rm(dir, { recursive: true, force: true });
      });
      const basePort = BASE_PORT + index * 10;
      await run(process.execPath, [
        BIN,
        'testnet',
        'init',
        '--dir',
        dir,
        '--base-port',
        String(basePort),
        '--accounts',
        '2',
      ]);
      const clusterFile = join(dir, 'cluster.json');
      const cluster = JSON.parse(await readFile(clusterFile, 'utf8')) as { protocol: Record<string, number> };
      cluster.protocol['viewChangeTimeoutTicks'] = 50;
      cluster.protocol['checkpointInterval'] = 2;
      cluster.protocol['watermarkWindow'] = 8;
      cluster.protocol['pipelineDepthMax'] = 4;
      await writeFile(clusterFile, JSON.stringify(cluster, null, 2));
      for (let id = 0; id < 4; id++) {
        const extra = id === liar ? ['--byzantine', behaviour] : [];
        children.push(
          spawn(process.execPath, [BIN, 'node', '--home', join(dir, `replica-${id}`), ...extra], {
            stdio: 'ignore',
          }),
        );
      }
      const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
      const client = await connectWhenUp(dir, 'alice');
      expect(client, 'cluster reachable').not.toBeNull();
      cleanup.push(async () => client?.close());
      for (let i = 0; i < TRANSFERS; i++) {
        await expect(client!.transfer(bob.publicKeyHex, 5)).resolves.toMatchObject({ status: 'ok' });
      }
      // 2f+1 replicas agree on the result; the liar cannot make a correct replica diverge.
      const balance = await client!.balance(bob.publicKeyHex);
      expect(balance.balance).toBe(1_000_000 + 5 * TRANSFERS);
    },
    60_000,
  );
});
