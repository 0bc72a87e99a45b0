/**
 * Lying replicas on real processes: `pbft node --byzantine` runs a simulator strategy inside a real
 * replica. An equivocating primary is voted out while it keeps running (a dead primary would be
 * voted out too), and the cluster keeps committing; outside a testnet the flag is refused.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
const BASE_PORT = basePortFor('test/e2e/byzantine.test.ts');
/** What a liar's log says when it starts (src/node/replica-node.ts). */
const LIAR_STARTED = 'this replica LIES: it runs a Byzantine strategy';
let dir = '';
const replicas: TestReplicaProcess[] = [];

interface ClusterJson {
  testnet: boolean;
  protocol: Record<string, number>;
}

async function setCluster(change: (cluster: ClusterJson) => void): Promise<void> {
  const file = join(dir, 'cluster.json');
  const cluster = JSON.parse(await readFile(file, 'utf8')) as ClusterJson;
  change(cluster);
  await writeFile(file, JSON.stringify(cluster, null, 2));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-byzantine-'));
  await run(process.execPath, [
    PBFT_BIN,
    'testnet',
    'init',
    '--dir',
    dir,
    '--base-port',
    String(BASE_PORT),
    '--accounts',
    '2',
  ]);
  // The view-change timeout stays at its default (2 s): with a shorter one, on a busy machine,
  // backups also replace an honest primary, and a view change would prove nothing about a liar.
});

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.kill9()));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('an equivocating primary is replaced while it keeps running, and transfers keep committing', async () => {
  for (let id = 0; id < 4; id++) {
    replicas.push(startReplicaProcess(dir, id, id === 0 ? ['--byzantine', 'equivocate'] : []));
  }
  const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
  const client = await connectWhenUp(dir, 'alice');
  expect(client).not.toBeNull();
  try {
    const receipts = [];
    for (let i = 0; i < 5; i++) receipts.push(await client!.transfer(bob.publicKeyHex, 10));
    expect(receipts.map((receipt) => receipt.status)).toEqual(Array(5).fill('ok'));
    // The honest replicas left view 0, whose primary lied.
    expect(receipts.at(-1)!.view).toBeGreaterThanOrEqual(1);
    const balance = await client!.balance(bob.publicKeyHex);
    expect(balance.balance).toBe(1_000_000 + 50);
    // Every honest replica moved on, and the liar did not die: it started as a liar, it is still
    // running, and it answers (it follows the new view, as its honest core does).
    const statuses = await client!.status(5_000);
    for (const id of [1, 2, 3]) expect(statuses[id], `replica ${id}`).toMatchObject({ reachable: true });
    expect(Math.min(...[1, 2, 3].map((id) => statuses[id]!.view!))).toBeGreaterThanOrEqual(1);
    expect(logEntries(replicas[0]!.log(), LIAR_STARTED)).toMatchObject([{ behaviour: 'equivocate' }]);
    expect(replicas[0]!.alive(), 'the liar still running').toBe(true);
    expect(statuses[0], 'the liar answers status').toMatchObject({ reachable: true });
  } finally {
    await client?.close();
  }
}, 90_000);

it('refuses --byzantine outside a testnet, naming the file and field', async () => {
  await setCluster((cluster) => {
    cluster.testnet = false;
  });
  const failure = await run(process.execPath, [
    PBFT_BIN,
    'node',
    '--home',
    join(dir, 'replica-1'),
    '--byzantine',
    'silent',
  ]).catch((error: { code: number; stderr: string }) => error);
  expect(failure).toMatchObject({ code: 3 });
  expect((failure as { stderr: string }).stderr).toMatch(
    /cluster\.json: field "testnet" is false, so --byzantine silent is refused/,
  );
}, 30_000);
