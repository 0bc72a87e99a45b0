/**
 * Each lying behaviour, run inside a real replica process of a 4-replica cluster: transfers keep
 * committing with the same result everywhere, and the test checks that a liar was there to be
 * survived. The liar is alive at the end and answers (a dead replica would also be outvoted, and a
 * dead primary also forces a view change), its log names the behaviour it runs, and the honest
 * replicas show the lie: they counted its messages as invalid (pbft_invalid_messages_total, by
 * reason, from their /metrics), were forced out of the liar's view, received its well-signed
 * messages in numbers only a flood brings, executed batches only a padding primary makes, or caught
 * up by state transfer, as the behaviour implies.
 * (The two behaviours that need the liar to become a new primary, fake-view-change and
 * bad-new-view, are exercised by the simulator scenarios.)
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import type { ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { readKeyFile } from '../../src/index.ts';
import {
  basePortFor,
  connectWhenUp,
  counterByLabel,
  logEntries,
  PBFT_BIN,
  scrapeMetrics,
  startReplicaProcess,
  type TestReplicaProcess,
} from './helpers.ts';

const run = promisify(execFile);
const TRANSFERS = 4;
/** What a liar's log says when it starts (src/node/replica-node.ts). */
const LIAR_STARTED = 'this replica LIES: it runs a Byzantine strategy';
/**
 * PREPAREs the honest replicas receive together from a future-view flooder within seconds: the
 * four transfers bring them a few dozen.
 */
const FLOODED_PREPARES_MIN = 1_500;
/** A batch this large can only be a padding liar's: the test sends four transfers, one at a time. */
const PADDED_BATCH_REQUESTS_MIN = 128;
/** The honest replicas must show the lie within this long of the last transfer. */
const EVIDENCE_TIMEOUT_MS = 20_000;
/**
 * Honest replicas reject a few messages as outside the watermarks on their own (late votes for
 * sequence numbers a checkpoint has just passed): about 2-4 each in these runs, so about 12 for
 * the three. Replayed and flooded messages make it dozens to hundreds per replica, so this many
 * can only come from the liar.
 */
const OUTSIDE_WATERMARKS_FROM_A_LIAR_MIN = 60;

/** Evidence that the honest replicas saw the lie. */
interface Evidence {
  /** Every honest replica left view 0: its primary, the liar, was voted out. */
  viewChange?: true;
  /**
   * pbft_invalid_messages_total of the honest replicas together: at least `atLeast` messages under
   * reasons matching `reason`. Together, because one of them may join the view change before the
   * liar's first bad message reaches it.
   */
  invalid?: Array<{ reason: RegExp; atLeast: number }>;
  /**
   * pbft_messages_received_total of the honest replicas together: at least `atLeast` messages of
   * types matching `type` (correctly signed, so counted as received, not as invalid).
   */
  received?: Array<{ type: RegExp; atLeast: number }>;
  /** An honest replica executed a batch of more than this many requests (pbft_batch_size). */
  batchOver?: number;
  /** The honest replicas completed at least this many state transfers together. */
  stateTransfers?: number;
}

interface Scenario {
  behaviour: ByzantineBehaviour;
  liar: number;
  evidence: Evidence;
}

const SCENARIOS: Scenario[] = [
  { behaviour: 'silent', liar: 0, evidence: { viewChange: true } },
  { behaviour: 'equivocate', liar: 0, evidence: { viewChange: true } },
  // It orders every client but alice (whose first request reached it first), promptly.
  { behaviour: 'censor', liar: 0, evidence: { viewChange: true } },
  {
    behaviour: 'bad-digest',
    liar: 0,
    evidence: { viewChange: true, invalid: [{ reason: /^digest-mismatch$/, atLeast: 1 }] },
  },
  {
    behaviour: 'bad-signature',
    liar: 0,
    evidence: { viewChange: true, invalid: [{ reason: /^bad-signature$/, atLeast: 1 }] },
  },
  {
    behaviour: 'replay',
    liar: 3,
    evidence: { invalid: [{ reason: /^outside-watermarks$/, atLeast: OUTSIDE_WATERMARKS_FROM_A_LIAR_MIN }] },
  },
  {
    behaviour: 'unprepared-votes',
    liar: 3,
    evidence: { invalid: [{ reason: /^vote-for-other-digest$/, atLeast: 1 }] },
  },
  {
    behaviour: 'fake-checkpoint',
    liar: 3,
    evidence: { invalid: [{ reason: /^checkpoint-state-mismatch$/, atLeast: 1 }] },
  },
  // Its view executes an empty batch every tick, and alice's transfer none.
  { behaviour: 'empty-batches', liar: 0, evidence: { viewChange: true } },
  // Every batch of its view carries about 220 requests of throwaway clients (256 KiB).
  { behaviour: 'big-batches', liar: 0, evidence: { batchOver: PADDED_BATCH_REQUESTS_MIN } },
  {
    behaviour: 'flood-future-views',
    liar: 3,
    evidence: { received: [{ type: /^prepare$/, atLeast: FLOODED_PREPARES_MIN }] },
  },
  // Replica 1 never gets a PRE-PREPARE or COMMIT of view 0 from it, and catches up by state transfer.
  { behaviour: 'selective-commit', liar: 0, evidence: { stateTransfers: 1 } },
  {
    behaviour: 'flood',
    liar: 3,
    evidence: {
      invalid: [
        { reason: /^outside-watermarks$/, atLeast: OUTSIDE_WATERMARKS_FROM_A_LIAR_MIN },
        // Its VIEW-CHANGEs and CHECKPOINTs come far faster than a correct replica's: the excess
        // is dropped before its signatures are checked.
        { reason: /^rate-limited$/, atLeast: 1 },
        // Garbage frames fail decoding: the reason is the CodecError's code (MALFORMED_CBOR, …).
        { reason: /^[A-Z_]+$/, atLeast: 1 },
      ],
    },
  },
];

interface ClusterJson {
  protocol: Record<string, number>;
  replicas: Array<{ id: number; metricsPort: number }>;
}

/** What the honest replicas, whose metrics are on `metricsPorts`, show of the lie, as far as `evidence` asks. */
async function shownBy(metricsPorts: readonly number[], evidence: Evidence): Promise<Evidence> {
  const metrics = await Promise.all(metricsPorts.map((port) => scrapeMetrics(port)));
  const shown: Evidence = {};
  if (evidence.viewChange) {
    const views = metrics.map((text) => Number(/^pbft_view (\d+)$/m.exec(text)?.[1] ?? 0));
    if (views.every((view) => view >= 1)) shown.viewChange = true;
  }
  if (evidence.invalid !== undefined) {
    const byReason = metrics.flatMap((text) => [
      ...counterByLabel(text, 'pbft_invalid_messages_total', 'reason'),
    ]);
    shown.invalid = evidence.invalid.filter(
      ({ reason, atLeast }) =>
        byReason.filter(([name]) => reason.test(name)).reduce((sum, [, count]) => sum + count, 0) >= atLeast,
    );
  }
  if (evidence.received !== undefined) {
    const byType = metrics.flatMap((text) => [
      ...counterByLabel(text, 'pbft_messages_received_total', 'type'),
    ]);
    shown.received = evidence.received.filter(
      ({ type, atLeast }) =>
        byType.filter(([name]) => type.test(name)).reduce((sum, [, count]) => sum + count, 0) >= atLeast,
    );
  }
  if (evidence.batchOver !== undefined) {
    const over = evidence.batchOver;
    const larger = metrics.map((text) => {
      const all = Number(/^pbft_batch_size_count (\S+)$/m.exec(text)?.[1] ?? 0);
      const upTo = Number(
        new RegExp(`^pbft_batch_size_bucket\\{le="${over}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0,
      );
      return all - upTo;
    });
    if (larger.some((count) => count > 0)) shown.batchOver = over;
  }
  if (evidence.stateTransfers !== undefined) {
    const transfers = metrics
      .map((text) => Number(/^pbft_state_transfers_total (\S+)$/m.exec(text)?.[1] ?? 0))
      .reduce((sum, count) => sum + count, 0);
    if (transfers >= evidence.stateTransfers) shown.stateTransfers = evidence.stateTransfers;
  }
  return shown;
}

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function runScenario({ behaviour, liar, evidence }: Scenario, index: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `pbft-${behaviour}-`));
  const replicas: TestReplicaProcess[] = [];
  cleanup.push(async () => {
    await Promise.all(replicas.map((replica) => replica.kill9()));
    await rm(dir, { recursive: true, force: true });
  });
  const basePort = basePortFor('test/e2e/byzantine-behaviours.test.ts', {
    clusters: SCENARIOS.length,
    cluster: index,
  });
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
  const clusterFile = join(dir, 'cluster.json');
  const cluster = JSON.parse(await readFile(clusterFile, 'utf8')) as ClusterJson;
  // The view-change timeout stays at its default (2 s): with a shorter one, on a busy machine,
  // backups also replace an honest primary, and a view change would prove nothing about a liar.
  cluster.protocol['checkpointInterval'] = 2;
  cluster.protocol['watermarkWindow'] = 8;
  cluster.protocol['pipelineDepthMax'] = 4;
  await writeFile(clusterFile, JSON.stringify(cluster, null, 2));
  for (let id = 0; id < 4; id++) {
    replicas.push(startReplicaProcess(dir, id, id === liar ? ['--byzantine', behaviour] : []));
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

  // The honest replicas show the lie (counters only grow: wait for them to get there).
  const honestMetricsPorts = cluster.replicas
    .filter((replica) => replica.id !== liar)
    .map((replica) => replica.metricsPort);
  await expect
    .poll(() => shownBy(honestMetricsPorts, evidence), {
      timeout: EVIDENCE_TIMEOUT_MS,
      interval: 250,
      message: 'what the honest replicas show of the lie',
    })
    .toEqual(evidence);
  // The liar was there all along: it started as a liar, it is still running, and it answers.
  const liarProcess = replicas[liar]!;
  expect(logEntries(liarProcess.log(), LIAR_STARTED)).toMatchObject([{ behaviour }]);
  expect(liarProcess.alive(), `liar ${liar} still running`).toBe(true);
  const statuses = await client!.status(5_000);
  expect(statuses[liar], `liar ${liar} answers status`).toMatchObject({ reachable: true });
}

describe('lying replicas on real processes', () => {
  for (const [index, scenario] of SCENARIOS.entries()) {
    it(`the cluster keeps committing while a live replica lies, and the honest replicas show the lie: ${scenario.behaviour}`, async () => {
      await runScenario(scenario, index);
    }, 90_000);
  }
});
