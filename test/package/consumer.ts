/**
 * A program that depends on the pbft package. test/package/package.test.ts copies it into a fresh
 * project where `npm install` put the packed tarball, type-checks it there against the shipped
 * declarations (tsc --noEmit) and runs it with that project's Node. In this repository it
 * type-checks against the sources (tsconfig.json's "pbft-source" condition) and is never run.
 *
 * node consumer.ts TESTNET_DIR REPLICA_ID: loads the client alone (`pbft/client`) and notes whether
 * that loaded LevelDB; then runs replica REPLICA_ID of the testnet in this process (`startReplica`
 * from `pbft`), transfers 25 from alice to bob once the cluster answers, reads bob's balance, and
 * prints one JSON line with what it saw.
 */
import { registerHooks } from 'node:module';
import { join } from 'node:path';
import type { BalanceAnswer, PbftClient as Client, ReplicaStatus, TransferReceipt } from 'pbft';

// Every module this process resolves, so that the output can say whether LevelDB was loaded.
const resolved: string[] = [];
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context);
    resolved.push(result.url);
    return result;
  },
});
const levelDbLoaded = (): boolean => resolved.some((url) => url.includes('/node_modules/classic-level/'));

// The shipped declarations are types, not `any`: a string amount does not compile (and the
// directive below would be unused, itself an error, if it did).
// @ts-expect-error transfer's amount is a number
export const notAnAmount: Parameters<Client['transfer']>[1] = 'everything';

const [dir, replicaId] = process.argv.slice(2);
if (dir === undefined || replicaId === undefined)
  throw new Error('usage: consumer.ts TESTNET_DIR REPLICA_ID');

const { PbftClient, PbftClientError, readKeyFile } = await import('pbft/client');
const clientLoadedLevelDb = levelDbLoaded();

const { startReplica } = await import('pbft');
const replica = await startReplica({ home: join(dir, `replica-${replicaId}`), logLevel: 'warn' });
const libraryLoadedLevelDb = levelDbLoaded();

const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
let client: Client | null = null;
try {
  // The other replicas are processes that may still be starting: try for up to 20 s.
  for (let attempt = 0; client === null; attempt++) {
    client = await PbftClient.connect({
      cluster: join(dir, 'cluster.json'),
      key: readKeyFile(join(dir, 'accounts', 'alice.json')),
      counterFile: join(dir, 'alice.counter'),
      timeoutMs: 30_000,
    }).catch((error: unknown) => {
      if (!(error instanceof PbftClientError) || attempt >= 100) throw error;
      return null;
    });
    if (client === null) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const receipt: TransferReceipt = await client.transfer(bob.publicKeyHex, 25);
  const balance: BalanceAnswer = await client.balance(bob.publicKeyHex);
  // f+1 replies make the receipt, so the embedded replica may still be catching up: give it time
  // (it asks its peers within a retransmission interval).
  const catchUpDeadline = Date.now() + 20_000;
  while (replica.status().lastExecuted < receipt.seq && Date.now() < catchUpDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const status: ReplicaStatus = replica.status();
  console.log(
    JSON.stringify({
      clientLoadedLevelDb,
      libraryLoadedLevelDb,
      receipt,
      balance: balance.balance,
      replicaLastExecuted: status.lastExecuted,
    }),
  );
} finally {
  await client?.close();
  await replica.stop();
}
