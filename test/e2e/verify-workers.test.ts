/**
 * Replicas that verify signatures on worker threads (runtime.verifyWorkers) order the same
 * transfers and refuse the same forgeries as replicas that verify on the event loop.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { initTestnet } from '../../src/cli/testnet.ts';
import { ClusterConnection, PbftClient } from '../../src/client/client.ts';
import { readKeyFile } from '../../src/crypto/index.ts';
import { encodeOperation } from '../../src/ledger/index.ts';
import { readClusterConfig } from '../../src/node/cluster-config.ts';
import { startReplica } from '../../src/node/replica-node.ts';
import {
  CLIENT_FRAME_SIZE_MAX_BYTES,
  decodeReplicaToClient,
  encodeClientFrame,
  type ReplicaToClient,
} from '../../src/protocol/client-protocol.ts';
import { type RequestBody, signBody } from '../../src/protocol/messages.ts';
import { createClientTransport } from '../../src/transport/index.ts';
import { basePortFor } from './helpers.ts';

const BASE_PORT = basePortFor('test/e2e/verify-workers.test.ts');
const TRANSFERS_PER_ACCOUNT = 20;
let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('replicas verifying on worker threads order transfers and refuse a forged request', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-verify-workers-'));
  await initTestnet({ dir, replicas: 4, basePort: BASE_PORT, accounts: 2, force: false });
  const loaded = await readClusterConfig(join(dir, 'cluster.json'));
  const cluster = { ...loaded, runtime: { ...loaded.runtime, verifyWorkers: 2, logLevel: 'warn' as const } };
  const replicas = await Promise.all(
    [0, 1, 2, 3].map((id) => startReplica({ home: join(dir, `replica-${id}`), cluster })),
  );
  const alice = readKeyFile(join(dir, 'accounts', 'alice.json'));
  const bob = readKeyFile(join(dir, 'accounts', 'bob.json'));
  const connection = await ClusterConnection.open({ cluster });
  try {
    const clients = await Promise.all(
      [alice, bob].map((key, index) =>
        PbftClient.connect({ connection, key, counterFile: join(dir, `account-${index}.counter`) }),
      ),
    );
    // Both accounts send concurrently, so PRE-PREPAREs carry several requests for the workers.
    await Promise.all(
      clients.map(async (client, index) => {
        const to = index === 0 ? bob.publicKeyHex : alice.publicKeyHex;
        for (let sent = 0; sent < TRANSFERS_PER_ACCOUNT; sent++) await client.transfer(to, index + 1);
      }),
    );
    const balances = await Promise.all([alice, bob].map((key) => clients[0]!.balance(key.publicKeyHex)));
    // alice sent 20 × 1 and received 20 × 2; bob the other way round.
    expect(balances.map((answer) => answer.balance)).toEqual([1_000_020, 999_980]);
    const executed = replicas.map((replica) => replica.status().lastExecuted);
    expect(Math.min(...executed)).toBeGreaterThan(0);
    // Every replica checked its signatures on the workers, none on its event loop.
    for (const replica of cluster.replicas) {
      const text = await (await fetch(`http://127.0.0.1:${replica.metricsPort}/metrics`)).text();
      const onWorkers = Number(/^pbft_signatures_verified_total\{thread="worker"\} (\d+)$/m.exec(text)?.[1]);
      expect(onWorkers, `replica ${replica.id}`).toBeGreaterThanOrEqual(2 * TRANSFERS_PER_ACCOUNT);
      // Every label is exported from the first scrape, so the event loop's count is present: at 0.
      const onEventLoop = Number(
        /^pbft_signatures_verified_total\{thread="event-loop"\} (\d+)$/m.exec(text)?.[1],
      );
      expect(onEventLoop, `replica ${replica.id}`).toBe(0);
    }

    // A forged request is refused by a replica whose workers check it.
    const transport = await createClientTransport({ frameSizeMaxBytes: CLIENT_FRAME_SIZE_MAX_BYTES });
    await transport.start();
    try {
      const stream = await transport.connect(cluster.replicas[2]!);
      const answers: ReplicaToClient[] = [];
      stream.onFrame((frame) => answers.push(decodeReplicaToClient(frame)));
      const signer = alice.signer();
      const request = signBody<RequestBody>(
        {
          type: 'request',
          client: alice.publicKey,
          t: 5_000,
          op: encodeOperation({ type: 'transfer', to: bob.publicKey, amount: 1 }),
        },
        (bytes) => signer.sign(bytes),
      );
      const forged = {
        ...request,
        signature: request.signature.map((byte, i) => (i === 5 ? byte ^ 4 : byte)),
      };
      stream.send(encodeClientFrame({ type: 'request', request: forged }));
      await expect.poll(() => answers.length, { timeout: 5_000 }).toBe(1);
      expect(answers[0]).toMatchObject({ type: 'request-error', reason: 'bad-signature', t: 5_000 });
      stream.close();
    } finally {
      await transport.stop();
    }
  } finally {
    await connection.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
  }
}, 60_000);
