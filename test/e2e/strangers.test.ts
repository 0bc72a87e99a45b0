/**
 * No stranger can lock anyone out (issue "Smart liars", finding 4), on four embedded replicas whose
 * reply cache holds only 8 replies: 40 fresh keys without accounts each send a transfer (refused,
 * unknown-sender) through one connection; then a fresh key that alice funds sends its first transfer,
 * which executes (its request number skips the floor its account was created with), and so do the
 * old accounts' transfers, however often the cache turned over.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterConnection, initTestnet, PbftClient, readKeyFile, startReplica } from 'pbft';
import { afterAll, expect, it } from 'vitest';
import { KeyPair } from '../../src/crypto/keys.ts';
import { basePortFor } from './helpers.ts';

const BASE_PORT = basePortFor('test/e2e/strangers.test.ts');
const REPLY_CACHE_MAX = 8;
const STRANGERS = 40;

let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('fresh keys without accounts take nothing from the accounts: a newly funded key and the old accounts still transfer', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-strangers-'));
  const testnet = await initTestnet({ dir, replicas: 4, basePort: BASE_PORT, accounts: 2, force: false });
  const clusterPath = join(dir, 'cluster.json');
  const cluster = JSON.parse(await readFile(clusterPath, 'utf8'));
  cluster.protocol = { ...cluster.protocol, clientTableMax: REPLY_CACHE_MAX };
  await writeFile(clusterPath, JSON.stringify(cluster, null, 2));
  const replicas = await Promise.all(
    testnet.replicas.map((replica) => startReplica({ home: replica.home, logLevel: 'warn' })),
  );
  const connection = await ClusterConnection.open({ cluster: clusterPath });
  try {
    const alice = await PbftClient.connect({
      connection,
      key: readKeyFile(join(dir, 'accounts', 'alice.json')),
      counterFile: join(dir, 'alice.counter'),
    });
    const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
    await alice.transfer(bob.publicKeyHex, 1);

    for (let i = 0; i < STRANGERS; i++) {
      const stranger = await PbftClient.connect({
        connection,
        key: KeyPair.generate(),
        counterFile: join(dir, `stranger-${i}.counter`),
      });
      await expect(stranger.transfer(bob.publicKeyHex, 1)).rejects.toMatchObject({
        reason: 'unknown-sender',
      });
      await stranger.close();
    }

    const newcomerKey = KeyPair.generate();
    await alice.transfer(newcomerKey.publicKeyHex, 10);
    const newcomer = await PbftClient.connect({
      connection,
      key: newcomerKey,
      counterFile: join(dir, 'newcomer.counter'),
    });
    const receipt = await newcomer.transfer(bob.publicKeyHex, 3);
    expect(receipt).toMatchObject({ status: 'ok', balance: 7 });
    // Its account was created at receipt.seq - 1 or earlier: its first t lies above that floor.
    expect(receipt.t).toBeGreaterThan(1);
    await expect(alice.transfer(bob.publicKeyHex, 1)).resolves.toMatchObject({ status: 'ok' });
    await expect(newcomer.balance(bob.publicKeyHex)).resolves.toMatchObject({ balance: expect.any(Number) });
    await newcomer.close();
    await alice.close();
  } finally {
    await connection.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
  }
}, 120_000);
