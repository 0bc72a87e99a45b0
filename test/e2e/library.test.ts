/**
 * The README's library example, run: four replicas embedded in this process with `startReplica`,
 * and a `PbftClient` that transfers and reads balances, all imported from the package itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterConnection, initTestnet, PbftClient, readKeyFile, startReplica } from 'pbft';
import { afterAll, expect, it } from 'vitest';
import { encodeOperation } from '../../src/ledger/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  decodeReplicaToClient,
  encodeClientFrame,
  type ReplicaToClient,
} from '../../src/protocol/client-protocol.ts';
import { type RequestBody, signBody } from '../../src/protocol/messages.ts';
import { createClientTransport } from '../../src/transport/index.ts';
import { basePortFor } from './helpers.ts';

const BASE_PORT = basePortFor('test/e2e/library.test.ts');
const METRIC_NAMES = [
  'pbft_view',
  'pbft_primary',
  'pbft_last_executed_seq',
  'pbft_stable_checkpoint',
  'pbft_low_watermark',
  'pbft_requests_in_flight',
  'pbft_batch_size',
  'pbft_commit_latency_seconds',
  'pbft_view_changes_total',
  'pbft_messages_received_total',
  'pbft_messages_sent_total',
  'pbft_invalid_messages_total',
  'pbft_peers_connected',
  'pbft_state_transfers_total',
  'pbft_signatures_verified_total',
  'pbft_storage_write_seconds',
];
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

    // Every replica serves the operator's metrics on its loopback port, and status names the URL.
    const reports = await client.status();
    for (const report of reports) {
      expect(report.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const text = await (await fetch(report.metricsUrl!)).text();
      for (const name of METRIC_NAMES)
        expect(text, `${name} on replica ${report.id}`).toContain(`# TYPE ${name} `);
      expect(text).toMatch(/^pbft_peers_connected 3$/m);
      expect(Number(/^pbft_last_executed_seq (\d+)$/m.exec(text)?.[1])).toBe(report.lastExecuted);
    }

    // Bad input gets a clear answer. A client whose counter file was lost reuses request numbers:
    // f+1 replicas refuse them, and nothing executes twice.
    await rm(join(dir, 'alice.counter'));
    const forgetful = await PbftClient.connect({
      cluster: join(dir, 'cluster.json'),
      key: alice,
      counterFile: join(dir, 'alice.counter'),
      timeoutMs: 10_000,
    });
    try {
      // t = 1 executed already and is answered from the reply cache; t = 2 was never used.
      await expect(forgetful.transfer(bob.publicKeyHex, 1)).resolves.toMatchObject({
        t: 1,
        seq: receipt.seq,
      });
      await expect(forgetful.transfer(bob.publicKeyHex, 1)).resolves.toMatchObject({ t: 2 });
    } finally {
      await forgetful.close();
    }
    // Losing it again: t = 1 is now below the last executed request (2). f+1 replicas say so and
    // report that floor, so t = 1 never executed in this process: the client signs the transfer
    // again above the floor instead of failing (a new account's first request goes the same way).
    await rm(join(dir, 'alice.counter'));
    const stale = await PbftClient.connect({
      cluster: join(dir, 'cluster.json'),
      key: alice,
      counterFile: join(dir, 'alice.counter'),
      timeoutMs: 10_000,
    });
    try {
      await expect(stale.transfer(bob.publicKeyHex, 1)).resolves.toMatchObject({ status: 'ok', t: 3 });
    } finally {
      await stale.close();
    }
    // Many accounts behind one connection: each gets its own replies, and closing one account's
    // client leaves the shared connection to the others until the connection itself is closed.
    const shared = await ClusterConnection.open({ cluster: join(dir, 'cluster.json') });
    const aliceShared = await PbftClient.connect({
      connection: shared,
      key: alice,
      counterFile: join(dir, 'alice.counter'),
    });
    const bobShared = await PbftClient.connect({
      connection: shared,
      key: bob,
      counterFile: join(dir, 'bob.counter'),
    });
    const aliceBefore = (await bobShared.balance(alice.publicKeyHex)).balance;
    const bobBefore = (await bobShared.balance(bob.publicKeyHex)).balance;
    const [fromAlice, fromBob] = await Promise.all([
      aliceShared.transfer(bob.publicKeyHex, 10),
      bobShared.transfer(alice.publicKeyHex, 3),
    ]);
    // Each receipt is its own sender's: the two may execute in either order.
    expect([aliceBefore - 10, aliceBefore - 10 + 3]).toContain(fromAlice.balance);
    expect([bobBefore - 3, bobBefore - 3 + 10]).toContain(fromBob.balance);
    await aliceShared.close();
    expect(shared.isClosed).toBe(false);
    await expect(bobShared.transfer(alice.publicKeyHex, 2)).resolves.toMatchObject({
      balance: bobBefore + 10 - 3 - 2,
    });
    await expect(bobShared.balance(alice.publicKeyHex)).resolves.toMatchObject({
      balance: aliceBefore - 10 + 3 + 2,
    });
    const cutOff = expect(bobShared.transfer(alice.publicKeyHex, 1)).rejects.toMatchObject({
      code: 'CLOSED',
    });
    await shared.close();
    await cutOff;
    await bobShared.close();

    // A request with a corrupted signature is refused by every replica that sees it.
    const transport = await createClientTransport({ frameSizeMaxBytes: CLIENT_FRAME_SIZE_MAX_BYTES });
    await transport.start();
    try {
      const cluster = await readClusterConfig(join(dir, 'cluster.json'));
      const connection = await transport.connect(cluster.replicas[1]!);
      const answers: ReplicaToClient[] = [];
      connection.onFrame((frame) => answers.push(decodeReplicaToClient(frame)));
      const signer = alice.signer();
      const request = signBody<RequestBody>(
        {
          type: 'request',
          client: alice.publicKey,
          t: 1_000,
          op: encodeOperation({ type: 'transfer', to: bob.publicKey, amount: 1 }),
        },
        (bytes) => signer.sign(bytes),
      );
      const forged = {
        ...request,
        signature: request.signature.map((byte, index) => (index === 0 ? byte ^ 1 : byte)),
      };
      connection.send(encodeClientFrame({ type: 'request', request: forged }));
      await expect.poll(() => answers.length, { timeout: 5_000 }).toBe(1);
      expect(answers[0]).toMatchObject({
        type: 'request-error',
        reason: 'bad-signature',
        t: 1_000,
        replica: 1,
      });
      connection.close();
    } finally {
      await transport.stop();
    }
  } finally {
    await client.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
  }
}, 60_000);
