/**
 * A replica process that lies to clients: `pbft node --byzantine forged-reads` answers every balance
 * query with a forged or stale balance while claiming to be up to date. Transfers commit, and both
 * a library read and `pbft balance` return the true balance; each replica's own answer shows that
 * the liar really lied.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { readKeyFile } from '../../src/index.ts';
import {
  basePortFor,
  connectWhenUp,
  logEntries,
  PBFT_BIN,
  startReplicaProcess,
  type TestReplicaProcess,
} from './helpers.ts';

const run = promisify(execFile);
const LIAR = 3;
const TRANSFERS = 3;
const AMOUNT = 5;
/** What a liar's log says when it starts (src/node/replica-node.ts). */
const LIAR_STARTED = 'this replica LIES: it runs a Byzantine strategy';
let dir = '';
const replicas: TestReplicaProcess[] = [];

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.kill9()));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('a replica forging query answers cannot make a library read or `pbft balance` return its lie', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-lying-to-clients-'));
  const basePort = basePortFor('test/e2e/lying-to-clients.test.ts');
  await run(process.execPath, [
    PBFT_BIN,
    'testnet',
    'init',
    '--dir',
    dir,
    '--base-port',
    String(basePort),
    '--accounts',
    '2',
  ]);
  for (let id = 0; id < 4; id++) {
    replicas.push(startReplicaProcess(dir, id, id === LIAR ? ['--byzantine', 'forged-reads'] : []));
  }
  const bob = readKeyFile(join(dir, 'accounts', 'bob.json')).publicKeyHex;
  const client = await connectWhenUp(dir, 'alice');
  expect(client, 'cluster reachable').not.toBeNull();
  try {
    for (let i = 0; i < TRANSFERS; i++) await client!.transfer(bob, AMOUNT);
    const truth = 1_000_000 + TRANSFERS * AMOUNT;

    // A read straight after the last transfer: a correct replica may not have executed it yet, so
    // the client must not take an answer from one that lags (read-your-writes), nor the liar's.
    await expect(client!.balance(bob)).resolves.toMatchObject({ balance: truth });

    // Each replica's own answer, unvoted, once the correct ones have all caught up: the liar's is
    // not the truth.
    const answers = async (): Promise<Array<[number, number]>> =>
      [...(await client!.balanceByReplica(bob, 10_000))]
        .map(([replica, answer]): [number, number] => [replica, answer.balance])
        .sort(([a], [b]) => a - b);
    await expect
      .poll(async () => (await answers()).filter(([replica]) => replica !== LIAR), { timeout: 10_000 })
      .toEqual([0, 1, 2].map((replica) => [replica, truth]));
    const liarAnswer = (await answers()).find(([replica]) => replica === LIAR);
    expect(liarAnswer, 'the liar answers').toBeDefined();
    expect(liarAnswer![1], 'the liar’s answer').not.toBe(truth);

    const { stdout } = await run(process.execPath, [
      PBFT_BIN,
      'balance',
      bob,
      '--cluster',
      join(dir, 'cluster.json'),
      '--json',
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ address: bob, balance: truth, exists: true });

    // The liar ran as one all along, and is still running.
    expect(logEntries(replicas[LIAR]!.log(), LIAR_STARTED)).toMatchObject([{ behaviour: 'forged-reads' }]);
    expect(replicas[LIAR]!.alive()).toBe(true);
  } finally {
    await client?.close();
  }
}, 90_000);
