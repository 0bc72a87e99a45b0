/**
 * The README's library example, run: four replicas embedded in this process with `startReplica`,
 * and a `PbftClient` that transfers and reads balances, all imported from the package itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initTestnet, PbftClient, readKeyFile, startReplica } from 'pbft';
import { afterAll, expect, it } from 'vitest';

const BASE_PORT = 19_000 + (process.pid % 50) * 8;
let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('embeds four replicas and a client: import { PbftClient, startReplica } from "pbft"', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-library-'));
  const testnet = await initTestnet({ dir, replicas: 4, basePort: BASE_PORT, accounts: 2, force: false });

  const replicas = await Promise.all(
    testnet.replicas.map((replica) => startReplica({ home: replica.home, logLevel: 'warn' })),
  );
  const alice = readKeyFile(join(dir, 'accounts', 'alice.json'));
  const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
  const client = await PbftClient.connect({
    cluster: join(dir, 'cluster.json'),
    key: alice,
    counterFile: join(dir, 'alice.counter'),
  });
  try {
    const receipt = await client.transfer(bob.publicKeyHex, 25);
    expect(receipt.status).toBe('ok');
    expect(receipt.seq).toBeGreaterThan(0);
    expect(receipt.balance).toBe(1_000_000 - 25);
    const balance = await client.balance(bob.publicKeyHex);
    expect(balance).toMatchObject({ balance: 1_000_025, exists: true });
    expect(replicas.map((replica) => replica.status().lastExecuted)).toContain(receipt.seq);
  } finally {
    await client.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
  }
}, 60_000);
