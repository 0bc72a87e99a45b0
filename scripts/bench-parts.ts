/**
 * node scripts/bench-parts.ts [--batch 80]
 *
 * CPU per transfer of each piece of work a transfer costs, measured in isolation on one core (no
 * network, no other processes): the signature checks, the client's signing, the codec work on
 * every path (request, PRE-PREPARE batch, storage, reply) and the ledger. `npm run bench` measures
 * the whole cluster; this says how its CPU per transfer divides, without the distortion a wall-clock
 * profiler has when five processes share two cores.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { BoundedCache } from '../src/crypto/bounded-cache.ts';
import { createSigner, createVerifier, sha256 } from '../src/crypto/index.ts';
import { decodeOperation, encodeOperation, encodeResult } from '../src/ledger/index.ts';
import { VerifyPool } from '../src/node/verify-pool.ts';
import { decodeReplicaToClient, encodeClientFrame } from '../src/protocol/client-protocol.ts';
import {
  decodeMessage,
  encodeMessage,
  encodePreparedSlot,
  type PrePrepareBody,
  type RequestBody,
  type Signed,
  signBody,
} from '../src/protocol/messages.ts';
import { verifyMessageSignatures } from '../src/protocol/verify.ts';

/** Each measurement runs for about this long after a warm-up of the same length. */
const MEASURE_MS = 300;

/** The verified-signature cache's size in a replica (VERIFIED_SIGNATURES_MAX in src/node/replica-node.ts). */
const FULL_CACHE_ENTRIES = 200_000;
/** Signatures per burst in the verification-throughput comparison (one PRE-PREPARE's worth). */
const POOL_BURST = 256;
/** Bursts in flight at once, as when several PRE-PREPAREs and client bursts overlap. */
const POOL_BURSTS_IN_FLIGHT = 8;

const { values } = parseArgs({ options: { batch: { type: 'string', default: '80' } } });
const batchSize = Number(values.batch);
if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error('--batch must be a positive integer');

/** Microseconds of CPU per call of `work`, divided by `per` (e.g. the requests in a batch). */
function microsecondsPer(work: () => void, per = 1): number {
  const run = (): number => {
    const started = performance.now();
    let calls = 0;
    const cpu = process.cpuUsage();
    while (performance.now() - started < MEASURE_MS) {
      work();
      calls++;
    }
    const used = process.cpuUsage(cpu);
    return (used.user + used.system) / calls / per;
  };
  run(); // warm-up: the JIT and the caches
  return run();
}

const sink = randomBytes(32);
const clients = Array.from({ length: batchSize }, () => createSigner(randomBytes(32), 'native'));
const op = encodeOperation({ type: 'transfer', to: sink, amount: 1 });
const batch: Signed<RequestBody>[] = clients.map((signer, index) =>
  signBody<RequestBody>({ type: 'request', client: signer.publicKey, t: 1_000 + index, op }, (bytes) =>
    signer.sign(bytes),
  ),
);
const primary = createSigner(randomBytes(32), 'native');
const prePrepare = signBody<PrePrepareBody>(
  { type: 'pre-prepare', view: 0, seq: 12_345, digest: sha256(randomBytes(32)), replica: 0 },
  (bytes) => primary.sign(bytes),
);
const prePrepareMessage = { type: 'pre-prepare' as const, prePrepare, batch };
const prePrepareFrame = encodeMessage(prePrepareMessage);
const requestFrame = encodeClientFrame({ type: 'request', request: batch[0]! });
const result = encodeResult({ status: 'ok', type: 'transfer', balance: 999_000 });
const reply = {
  type: 'reply' as const,
  reply: { type: 'reply' as const, view: 0, seq: 12_345, t: 1_000, client: sink, replica: 1, result },
};
const replyFrame = encodeClientFrame(reply);
const verifier = createVerifier('native');
const verified = new BoundedCache<string, true>(batchSize * 2);
const context = {
  verifier,
  replicaKeys: [primary.publicKey],
  cache: {
    verified: {
      has: (key: string) => verified.get(key) !== undefined,
      add: (key: string) => verified.set(key, true),
    },
    sha256,
  },
};
verifyMessageSignatures(prePrepareMessage, context);
const first = batch[0]!;

// A full cache evicts on every insert, as a replica's does after a few minutes under load.
const fullCache = new BoundedCache<string, true>(FULL_CACHE_ENTRIES);
let cacheKeys = 0;
for (; cacheKeys < FULL_CACHE_ENTRIES * 2; cacheKeys++) fullCache.set(`verified-${cacheKeys}`, true);

const rows: Array<[string, string, number]> = [
  [
    'client',
    'sign and encode a request',
    microsecondsPer(() => {
      const signer = clients[0]!;
      encodeClientFrame({
        type: 'request',
        request: signBody<RequestBody>({ type: 'request', client: signer.publicKey, t: 5, op }, (bytes) =>
          signer.sign(bytes),
        ),
      });
    }),
  ],
  ['client', 'decode one reply (of n)', microsecondsPer(() => decodeReplicaToClient(replyFrame))],
  [
    'each replica',
    'verify a request signature',
    microsecondsPer(() => verifier.verify(first.signature, first.bytes, first.body.client)),
  ],
  [
    'each replica',
    'verified-signature cache lookup',
    microsecondsPer(() => verifyMessageSignatures(prePrepareMessage, context), batchSize),
  ],
  [
    'each replica',
    'remember a signature in the full cache (evicts one)',
    microsecondsPer(() => {
      fullCache.set(`verified-${cacheKeys++}`, true);
    }),
  ],
  ['primary', 'decode a request frame', microsecondsPer(() => decodeMessage(requestFrame))],
  [
    'backup',
    `decode a PRE-PREPARE (per request, batch ${batchSize})`,
    microsecondsPer(() => decodeMessage(prePrepareFrame), batchSize),
  ],
  [
    'each replica',
    'encode the PRE-PREPARE for the log (per request)',
    microsecondsPer(() => encodeMessage(prePrepareMessage), batchSize),
  ],
  [
    'each replica',
    'encode the prepared certificate with its batch (per request)',
    microsecondsPer(
      () => encodePreparedSlot({ certificate: { prePrepare, prepares: [] }, batch }),
      batchSize,
    ),
  ],
  ['each replica', 'decode the operation', microsecondsPer(() => decodeOperation(op))],
  [
    'each replica',
    'encode the result',
    microsecondsPer(() => encodeResult({ status: 'ok', type: 'transfer', balance: 999_000 })),
  ],
  ['each replica', 'encode the reply', microsecondsPer(() => encodeClientFrame(reply))],
];

console.log(`CPU per transfer, one core, batch of ${batchSize} (µs)`);
for (const [where, what, microseconds] of rows)
  console.log(`${where.padEnd(13)} ${what.padEnd(52)} ${microseconds.toFixed(1).padStart(7)}`);

/**
 * Signatures per second one replica can check: on its event loop, and with `runtime.verifyWorkers`
 * workers (1 up to the cores). What a replica with cores to itself gains from the workers.
 */
async function poolRate(workers: number): Promise<number> {
  const pool = await VerifyPool.start(workers);
  try {
    const checks = Array.from({ length: POOL_BURST }, (_, index) => {
      const signed = batch[index % batch.length]!;
      return { signature: signed.signature, message: signed.bytes, publicKey: signed.body.client };
    });
    const burst = async (): Promise<void> => {
      const valid = await pool.verify(checks);
      if (!valid.every(Boolean)) throw new Error('a valid signature failed in a worker');
    };
    await Promise.all(Array.from({ length: POOL_BURSTS_IN_FLIGHT }, burst)); // warm-up
    const started = performance.now();
    let verified = 0;
    while (performance.now() - started < 4 * MEASURE_MS) {
      await Promise.all(Array.from({ length: POOL_BURSTS_IN_FLIGHT }, burst));
      verified += POOL_BURSTS_IN_FLIGHT * POOL_BURST;
    }
    return (verified / (performance.now() - started)) * 1000;
  } finally {
    await pool.close();
  }
}

const onEventLoop =
  1e6 / microsecondsPer(() => verifier.verify(first.signature, first.bytes, first.body.client));
console.log(`\nsignatures verified per second by one replica (${availableParallelism()} cores)`);
console.log(`${'event loop'.padEnd(20)} ${Math.round(onEventLoop).toString().padStart(7)}`);
for (let workers = 1; workers <= availableParallelism(); workers++) {
  const rate = await poolRate(workers);
  console.log(
    `${`${workers} worker${workers === 1 ? '' : 's'}`.padEnd(20)} ${Math.round(rate).toString().padStart(7)}`,
  );
}
