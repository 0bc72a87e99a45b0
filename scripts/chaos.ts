/**
 * npm run chaos -- [--replicas 4|7] [--seed S] [--duration SECONDS] [--clients N]
 *                  [--faults kill,pause,byzantine,partition,throttle,delay,loss] [--json] [--keep]
 *
 * A real cluster of `pbft node` processes under load from several clients, with faults injected on
 * a seeded schedule (see lib/chaos-schedule.ts): kill -9 and restart, SIGSTOP/SIGCONT pauses longer
 * than the view-change timeout, f replicas restarted as liars, and, when each replica can live in
 * its own network namespace, partitions, throttled links and (with tc netem) delay and loss.
 *
 * Afterwards every fault is healed, the load stops, and the run checks (lib/chaos-audit.ts) that
 * every acknowledged transfer executed exactly once on every correct replica, that their balances
 * agree and supply is unchanged, and that committing resumed within --recovery-max seconds of the
 * last fault. Exit code 0 when all holds, 1 when anything does not, 64 for bad arguments.
 */
import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { PbftClient } from '../src/client/client.ts';
import { PbftClientError, TransferRejectedError } from '../src/client/client.ts';
import { auditLedger, type LoadClientRecord } from './lib/chaos-audit.ts';
import {
  chooseLiars,
  describeEpisode,
  FAULT_CLASSES,
  type FaultClass,
  type FaultEpisode,
  faultCount,
  generateSchedule,
  isFaultClass,
  NETEM_FAULT_CLASSES,
  NETWORK_FAULT_CLASSES,
  resolveTargets,
} from './lib/chaos-schedule.ts';
import { probeNetns, ReplicaNetwork } from './lib/netns.ts';
import { integerOption } from './lib/options.ts';
import { formatStatuses, ProcessCluster, sleep, waitFor } from './lib/process-cluster.ts';

const EXIT_FAILED = 1;
const EXIT_USAGE = 64;
const SEED_RANDOM_MAX = 2 ** 40;
/** Development accounts start with this much (pbft testnet init). */
const INITIAL_BALANCE = 1_000_000;
/** A transfer that gets no f+1 matching replies this long is given up as "unknown outcome". */
const TRANSFER_TIMEOUT_MS = 20_000;
/** Small checkpoint intervals so that a run crosses many checkpoints and restarted replicas catch up by state transfer. */
const CHAOS_PROTOCOL = { checkpointInterval: 16, watermarkWindow: 64 };
/** Load before the first fault and after the last heal, so that both are measured against a running cluster. */
const STEADY_LOAD_MS = 3_000;
const CONVERGE_TIMEOUT_MS = 60_000;
const STARTUP_TIMEOUT_MS = 60_000;

function usage(message: string): never {
  console.error(`pbft chaos: ${message}`);
  console.error(
    `usage: npm run chaos -- [--replicas 4|7] [--seed S] [--duration SECONDS] [--clients N] [--faults ${FAULT_CLASSES.join(',')}] [--recovery-max SECONDS] [--json] [--keep]`,
  );
  process.exit(EXIT_USAGE);
}

function parseOptions() {
  try {
    return parseArgs({
      options: {
        replicas: { type: 'string' },
        seed: { type: 'string' },
        duration: { type: 'string' },
        clients: { type: 'string' },
        faults: { type: 'string' },
        'recovery-max': { type: 'string' },
        'base-port': { type: 'string' },
        json: { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    usage((error as Error).message);
  }
}

const values = parseOptions();
const replicaCount = integerOption(values.replicas, 'replicas', 4, 4, usage);
if ((replicaCount - 1) % 3 !== 0) usage(`--replicas must be 3f+1 (4, 7, 10, …), got ${replicaCount}`);
const f = faultCount(replicaCount);
const seed = integerOption(values.seed, 'seed', randomInt(0, SEED_RANDOM_MAX), 0, usage);
const durationMs = integerOption(values.duration, 'duration', 60, 1, usage) * 1_000;
const clientCount = integerOption(values.clients, 'clients', replicaCount, 1, usage);
const recoveryMaxMs = integerOption(values['recovery-max'], 'recovery-max', 60, 1, usage) * 1_000;
const basePort = integerOption(
  values['base-port'],
  'base-port',
  25_000 + (process.pid % 90) * 20,
  1_024,
  usage,
);
const requestedClasses = (values.faults ?? FAULT_CLASSES.join(',')).split(',').map((name) => name.trim());
for (const name of requestedClasses) {
  if (!isFaultClass(name)) usage(`unknown fault "${name}"; faults are ${FAULT_CLASSES.join(', ')}`);
}
const json = values.json;
const say = (line: string): void => {
  if (json) process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};

// Network faults need namespaces (and netem for delay and loss); skip what this machine cannot do.
const skipped: Array<{ fault: FaultClass; reason: string }> = [];
let classes = requestedClasses as FaultClass[];
let network: ReplicaNetwork | null = null;
if (classes.some((fault) => NETWORK_FAULT_CLASSES.includes(fault))) {
  const support = probeNetns();
  for (const reason of support.reasons) say(`note: ${reason}`);
  const unavailable = (fault: FaultClass): string | undefined => {
    if (!NETWORK_FAULT_CLASSES.includes(fault)) return undefined;
    if (!support.namespaces) return support.reasons[0] ?? 'network namespaces are unavailable';
    if (NETEM_FAULT_CLASSES.includes(fault) && !support.netem) return 'tc netem is unavailable';
    return undefined;
  };
  for (const fault of classes) {
    const reason = unavailable(fault);
    if (reason !== undefined) skipped.push({ fault, reason });
  }
  classes = classes.filter((fault) => unavailable(fault) === undefined);
  if (classes.some((fault) => NETWORK_FAULT_CLASSES.includes(fault)))
    network = new ReplicaNetwork(replicaCount);
}

const liars = classes.includes('byzantine') ? chooseLiars(seed, replicaCount) : [];
const dir = await mkdtemp(join(tmpdir(), 'pbft-chaos-'));
let cluster: ProcessCluster | null = null;
const openClients: PbftClient[] = [];

/** Last-resort cleanup when the runner dies or is interrupted: no stray processes or namespaces. */
function killEverythingNow(): void {
  for (const replica of cluster?.replicas ?? []) {
    if (replica.pid !== undefined) {
      try {
        process.kill(replica.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  network?.teardown();
}
process.on('exit', killEverythingNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    say(`chaos: interrupted; stopping the cluster (logs stay in ${dir})`);
    killEverythingNow();
    process.exit(130);
  });
}

interface EpisodeRecord {
  index: number;
  fault: FaultClass;
  behaviour?: string;
  replicas: number[];
  durationMs: number;
  /** From healing until every load client had a transfer acknowledged again. */
  recoveryMs: number | null;
  /** The longest time no client had a transfer acknowledged, from the fault until recovery. */
  longestStallMs: number;
}

async function main(): Promise<number> {
  say(
    `chaos: seed ${seed}, ${replicaCount} replicas (f = ${f}), ${clientCount} clients, faults ${classes.join(', ') || 'none'}` +
      (liars.length > 0 ? `, liars ${liars.join(', ')}` : ''),
  );
  for (const { fault, reason } of skipped) say(`chaos: skipping ${fault}: ${reason}`);
  if (network !== null) {
    network.setup();
    say(`chaos: replicas in network namespaces ${network.namespace(0)} … on ${network.subnet}.0/24`);
  }
  cluster = await ProcessCluster.create({
    dir,
    replicas: replicaCount,
    basePort,
    accounts: 2 * clientCount,
    protocol: CHAOS_PROTOCOL,
    ...(network === null
      ? {}
      : {
          hostOf: (id: number) => network!.hostOf(id),
          launcherOf: (id: number) => network!.launcherOf(id),
        }),
  });
  const running = cluster;
  const viewChangeTimeoutMs = running.config.protocol.viewChangeTimeoutTicks * running.config.runtime.tickMs;
  const schedule = generateSchedule({
    seed,
    replicas: replicaCount,
    classes,
    durationMs,
    viewChangeTimeoutMs,
    liars,
  });
  for (const episode of schedule) say(`chaos: planned ${describeEpisode(episode)}`);

  running.startAll();
  const observer = await running.client(null, 5_000);
  openClients.push(observer);
  let lastStatus = '';
  const describeStatus = (): string => `last status ${lastStatus}`;
  const statuses = async () => {
    const reports = await running.statuses(observer);
    lastStatus = formatStatuses(reports);
    return reports;
  };
  await waitFor(
    'every replica to connect to every other',
    async () =>
      (await statuses()).every((r) => r.reachable && r.peersConnected === replicaCount - 1)
        ? true
        : undefined,
    STARTUP_TIMEOUT_MS,
    describeStatus,
  );

  // The longest gap between two acknowledgements (of any client) since the last reset.
  let lastAnyAckAtMs = performance.now();
  let longestStallMs = 0;
  const noteAck = (atMs: number): void => {
    longestStallMs = Math.max(longestStallMs, atMs - lastAnyAckAtMs);
    lastAnyAckAtMs = atMs;
  };
  // Load: client i moves 1 unit at a time from account i to its own sink, account clientCount + i.
  const records: LoadClientRecord[] = [];
  const lastAckAtMs: number[] = [];
  let stopLoad = false;
  const unexpected: string[] = [];
  const loops = await Promise.all(
    Array.from({ length: clientCount }, async (_, index) => {
      const sender = running.accounts[index]!;
      const sink = running.accounts[clientCount + index]!;
      const client = await running.client(sender, TRANSFER_TIMEOUT_MS);
      openClients.push(client);
      const record: LoadClientRecord = {
        name: sender.name,
        sender: sender.key.publicKeyHex,
        sink: sink.key.publicKeyHex,
        acknowledged: 0,
        unknown: 0,
      };
      records.push(record);
      lastAckAtMs[index] = 0;
      return async (): Promise<void> => {
        while (!stopLoad) {
          try {
            await client.transfer(record.sink, 1);
            record.acknowledged++;
            lastAckAtMs[index] = performance.now();
            noteAck(lastAckAtMs[index]!);
          } catch (error) {
            if (error instanceof PbftClientError && error.code === 'TIMEOUT') record.unknown++;
            else if (error instanceof TransferRejectedError) {
              unexpected.push(`${record.name}: transfer rejected (${error.message})`);
              return;
            } else {
              unexpected.push(`${record.name}: ${(error as Error).message}`);
              return;
            }
          }
        }
      };
    }),
  );
  const loadDone = Promise.all(loops.map((loop) => loop()));
  const allAckedSince = (sinceMs: number): boolean => lastAckAtMs.every((atMs) => atMs > sinceMs);
  const waitForRecovery = async (healedAtMs: number): Promise<number | null> => {
    const deadline = healedAtMs + recoveryMaxMs;
    while (!allAckedSince(healedAtMs)) {
      if (performance.now() > deadline || unexpected.length > 0) return null;
      await sleep(20);
    }
    return Math.max(...lastAckAtMs.map((atMs) => atMs)) - healedAtMs;
  };

  const startedAtMs = performance.now();
  await sleep(STEADY_LOAD_MS);
  if (!allAckedSince(startedAtMs)) {
    throw new Error(`the cluster committed nothing for some client before any fault (${describeStatus()})`);
  }

  const episodes: EpisodeRecord[] = [];
  const primaryNow = async (): Promise<number> => {
    const reports = (await statuses()).filter((r) => r.reachable && !r.viewChangeInProgress);
    const view = Math.max(0, ...reports.map((r) => r.view ?? 0));
    return view % replicaCount;
  };
  for (const episode of schedule) {
    await sleep(episode.gapMs);
    const targets = resolveTargets(episode.targets, await primaryNow(), replicaCount);
    say(`chaos: ${describeEpisode(episode)} → replicas ${targets.join(', ')}`);
    longestStallMs = 0;
    await inject(running, episode, targets);
    await sleep(episode.durationMs);
    await heal(running, episode, targets);
    const healedAtMs = performance.now();
    const record: EpisodeRecord = {
      index: episode.index,
      fault: episode.fault,
      ...(episode.behaviour === undefined ? {} : { behaviour: episode.behaviour }),
      replicas: targets,
      durationMs: episode.durationMs,
      recoveryMs: null,
      longestStallMs: 0,
    };
    episodes.push(record);
    // Wait for every client to commit again before the next fault, so faults never pile up beyond f.
    record.recoveryMs = await waitForRecovery(healedAtMs);
    record.longestStallMs = Math.round(Math.max(longestStallMs, performance.now() - lastAnyAckAtMs));
    say(
      record.recoveryMs === null
        ? `chaos: #${episode.index}: committing did not resume within ${recoveryMaxMs} ms (${describeStatus()})`
        : `chaos: #${episode.index}: healed; every client committed again within ${Math.round(record.recoveryMs)} ms (longest stall ${record.longestStallMs} ms)`,
    );
    if (record.recoveryMs === null) break;
  }

  await sleep(STEADY_LOAD_MS);
  stopLoad = true;
  await loadDone;

  // Every replica catches up to the same point; then compare what each one holds.
  const converged = await waitFor(
    'every replica to execute the same requests',
    async () => {
      const reports = await statuses();
      const executed = new Set(reports.map((r) => r.lastExecuted));
      return reports.every((r) => r.reachable) && executed.size === 1 ? reports : undefined;
    },
    CONVERGE_TIMEOUT_MS,
    describeStatus,
  ).catch((error: Error) => {
    unexpected.push(error.message);
    return null;
  });
  const addresses = running.accounts.map((account) => account.key.publicKeyHex);
  const balances = new Map<number, Map<string, number>>();
  for (const address of addresses) {
    const answers = await observer.balanceByReplica(address, 5_000);
    for (const [replica, answer] of answers) {
      if (!balances.has(replica)) balances.set(replica, new Map());
      balances.get(replica)!.set(address, answer.balance);
    }
  }
  const correct = running.replicas.map((replica) => replica.id).filter((id) => !liars.includes(id));
  const audit = auditLedger({
    initialBalance: INITIAL_BALANCE,
    supply: INITIAL_BALANCE * addresses.length,
    clients: records,
    addresses,
    balances,
    correct,
  });
  const crashes = running.replicas.flatMap((replica) => replica.unexpectedExits);
  const lastRecoveryMs = episodes.at(-1)?.recoveryMs ?? null;
  const problems = [
    ...unexpected,
    ...crashes,
    ...audit.problems,
    ...episodes
      .filter((episode) => episode.recoveryMs === null)
      .map(
        (episode) =>
          `committing did not resume within ${recoveryMaxMs} ms of healing fault #${episode.index}`,
      ),
  ];
  const injected: Record<string, number> = {};
  for (const episode of episodes) injected[episode.fault] = (injected[episode.fault] ?? 0) + 1;
  const finalView = Math.max(0, ...(converged ?? []).map((r) => r.view ?? 0));
  const recoveries = episodes.flatMap((episode) => (episode.recoveryMs === null ? [] : [episode.recoveryMs]));

  const summary = {
    ok: problems.length === 0,
    seed,
    replicas: replicaCount,
    f,
    clients: clientCount,
    liars,
    faultsInjected: episodes.length,
    faultsByClass: injected,
    skipped,
    acknowledged: audit.acknowledged,
    unknownOutcome: audit.unknown,
    executed: audit.executed,
    lost: audit.lost,
    duplicated: audit.duplicated,
    lastExecutedSeq: converged?.[0]?.lastExecuted ?? null,
    finalView,
    recoveryAfterLastFaultMs: lastRecoveryMs === null ? null : Math.round(lastRecoveryMs),
    recoveryMaxMs: recoveries.length === 0 ? null : Math.round(Math.max(...recoveries)),
    episodes: episodes.map((episode) => ({
      ...episode,
      recoveryMs: episode.recoveryMs === null ? null : Math.round(episode.recoveryMs),
    })),
    problems,
  };
  say('');
  say(
    `faults injected     ${episodes.length} (${
      Object.entries(injected)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    })`,
  );
  if (skipped.length > 0)
    say(`skipped             ${skipped.map((s) => s.fault).join(', ')} (see notes above)`);
  say(
    `transfers           ${audit.acknowledged} acknowledged, ${audit.unknown} unknown outcome, ${audit.executed} executed`,
  );
  say(`lost / duplicated   ${audit.lost} / ${audit.duplicated}`);
  say(
    `replicas agree      ${audit.problems.length === 0 ? 'yes' : 'NO'} (checked ${correct.join(', ')}; final view ${finalView})`,
  );
  say(
    `recovery            ${summary.recoveryAfterLastFaultMs ?? '-'} ms after the last fault (worst ${summary.recoveryMaxMs ?? '-'} ms, bound ${recoveryMaxMs} ms)`,
  );
  for (const problem of problems) say(`PROBLEM: ${problem}`);
  if (problems.length > 0) {
    say(
      `chaos: FAILED; replay the schedule with: npm run chaos -- --replicas ${replicaCount} --seed ${seed} --duration ${durationMs / 1_000} --clients ${clientCount} --faults ${requestedClasses.join(',')}`,
    );
    say(`chaos: replica logs kept in ${dir}`);
  } else {
    say('chaos: passed');
  }
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  return problems.length === 0 ? 0 : EXIT_FAILED;
}

async function inject(running: ProcessCluster, episode: FaultEpisode, targets: number[]): Promise<void> {
  for (const id of targets) {
    const replica = running.replicas[id]!;
    switch (episode.fault) {
      case 'kill':
        await replica.kill9();
        break;
      case 'pause':
        replica.pause();
        break;
      case 'byzantine':
        await replica.kill9();
        replica.start(['--byzantine', episode.behaviour!]);
        break;
      default:
        network!.inject(id, episode.fault);
    }
  }
}

async function heal(running: ProcessCluster, episode: FaultEpisode, targets: number[]): Promise<void> {
  for (const id of targets) {
    const replica = running.replicas[id]!;
    switch (episode.fault) {
      case 'kill':
        replica.start();
        break;
      case 'pause':
        replica.resume();
        break;
      case 'byzantine':
        await replica.kill9();
        replica.start();
        break;
      default:
        network!.heal(id);
    }
  }
}

let exitCode = EXIT_FAILED;
try {
  exitCode = await main();
} catch (error) {
  const message = (error as Error).message;
  say(`chaos: ${message}`);
  say(`chaos: FAILED (seed ${seed}); replica logs kept in ${dir}`);
  if (json)
    process.stdout.write(
      `${JSON.stringify({ ok: false, seed, replicas: replicaCount, problems: [message] })}\n`,
    );
}
for (const client of openClients) await client.close().catch(() => undefined);
await (cluster as ProcessCluster | null)?.stopAll();
network?.teardown();
if (exitCode === 0 && !values.keep) await rm(dir, { recursive: true, force: true });
process.exit(exitCode);
