/**
 * npm run bench -- [--replicas 4] [--clients 32] [--duration 20] [--warmup 5] [--json]
 * npm run bench -- --soak            (10 minutes, RSS sampled every 10 s, judged flat or not)
 *
 * Starts a real cluster (one `pbft node` process per replica, libp2p over loopback) in a temporary
 * folder, drives it with closed-loop clients (one funded account each, transfer after transfer),
 * warms up, then measures: committed transfers per second, client-observed latency p50/p99, CPU
 * per replica, peak RSS. It also measures this machine's ed25519 verification rate and relates
 * the throughput to the ceiling that signature checking alone sets:
 *
 *   every transfer's request signature is verified once by every replica, so on C cores
 *   throughput ≤ C × (verifications per second per core) ÷ replicas.
 *
 * With --json the last stdout line is one JSON object. Processes and the temporary folder are
 * removed on exit and on Ctrl-C.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { PbftClient } from '../src/client/client.ts';
import { type CryptoBackend, createSigner, createVerifier } from '../src/crypto/index.ts';
import {
  type LoadDriver,
  type LoadOptions,
  type LoadWindow,
  startLoadInProcess,
  startLoadProcess,
} from './lib/load-generator.ts';
import { parseIntegerAtLeast } from './lib/options.ts';
import {
  formatStatuses,
  otherReplicaProcesses,
  ProcessCluster,
  sleep,
  waitFor,
} from './lib/process-cluster.ts';

/** Accounts that only receive: transfers never touch a sender's own balance twice over. */
const SINK_ACCOUNTS = 4;
/** Loopback ports from here on (replica i: base + i; its metrics: base + n + i). */
const BASE_PORT_DEFAULT = 23_000;
const WARMUP_DEFAULT_S = 5;
const DURATION_DEFAULT_S = 20;
/**
 * A soak runs 10 minutes: at ~1,500 transfers/s the bounded caches (200,000 verified signatures)
 * fill in about 2.5 minutes and V8's heap reaches its working size by about 4, so a shorter run
 * cannot tell a cache filling up from a leak; the last 5 minutes are judged.
 */
const SOAK_DURATION_S = 600;
const SAMPLE_INTERVAL_DEFAULT_S = 10;
/**
 * Clients per ClusterConnection: like a service acting for many accounts. Stays well under the
 * replicas' per-connection frame limit (runtime.clientFramesPerSecondMax, 2,000/s by default).
 */
const ACCOUNTS_PER_CONNECTION_DEFAULT = 32;
/** How long one verification-rate measurement runs, per backend. */
const VERIFY_MEASURE_MS = 1_000;
/** Verifications between clock reads while measuring the rate. */
const VERIFY_CHUNK = 50;
/** About the size of a signed REQUEST body (client key, t, a transfer operation). */
const VERIFY_MESSAGE_BYTES = 128;
const CLUSTER_READY_TIMEOUT_MS = 60_000;
const CLIENT_TIMEOUT_MS = 30_000;
/** In a soak run, RSS may grow this much over the last third (fraction, or MiB if larger). */
const RSS_FLAT_TOLERANCE_FRACTION = 0.1;
const RSS_FLAT_TOLERANCE_MB = 16;
/** Samples averaged at two thirds and at the end of a soak run. */
const SOAK_WINDOW_SAMPLES = 3;
const PERCENT = 100;
/**
 * The share of the signature ceiling pbft aims for (docs/performance.md). Printed beside the CPU per
 * transfer: at this ratio the whole run may spend at most (verification per transfer) ÷ ratio.
 */
const RATIO_TARGET = 0.6;
/** /proc/stat counts CPU time in clock ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_SECOND = 100;
/** Above this much CPU used by other processes during the run, the result is flagged as disturbed. */
const OTHER_CPU_WARNING_PERCENT = 10;

interface BenchOptions {
  replicas: number;
  clients: number;
  duration?: number;
  warmup: number;
  soak: boolean;
  sampleInterval: number;
  basePort: number;
  load: 'process' | 'inline';
  accountsPerConnection: number;
  protocol: Record<string, number>;
  runtime: Record<string, number>;
  cpuProf?: string;
  keep: boolean;
  json: boolean;
}

interface Sample {
  /** Seconds since the measurement started. */
  atS: number;
  rssMb: number[];
  txPerSec: number;
  stableCheckpoint: number[];
}

interface BenchResult {
  replicas: number;
  clients: number;
  durationS: number;
  warmupS: number;
  load: 'process' | 'inline';
  accountsPerConnection: number;
  /** cluster.json settings changed from their defaults for this run (--protocol, --runtime). */
  overrides: Record<string, number>;
  transfers: number;
  errors: number;
  txPerSec: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  cpuPercentPerReplica: number[];
  /** CPU of the process running the clients, as % of one core. */
  loadCpuPercent: number;
  /** CPU of the benchmark process itself (the clients too when --load inline). */
  benchCpuPercent: number;
  /** CPU used by every other process on the machine meanwhile: a disturbed run shows here. */
  otherCpuPercent: number;
  /** `pbft node` processes not started by this run, found when it began. */
  otherReplicaProcesses: number;
  rssMbMax: number;
  verifyPerSecNative: number;
  verifyPerSecNoble: number;
  cores: number;
  ceilingTxPerSec: number;
  ratio: number;
  /** CPU of the replicas, the clients and the benchmark per committed transfer. */
  cpuMsPerTransfer: number;
  /** Of that, the replicas' CPU. */
  replicaCpuMsPerTransfer: number;
  /** What the ceiling counts per transfer: one native verification per replica. */
  verifyMsPerTransfer: number;
  node: string;
  cpuModel: string;
  soak?: { samples: Sample[]; rssFlat: boolean; rssGrowthMb: number[] };
}

function integerArgument(name: string, min: number): (value: string) => number {
  return (value) => {
    const parsed = parseIntegerAtLeast(value, min);
    if (parsed === null) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return parsed;
  };
}

/** A `name=integer` override of a cluster.json setting; repeated options add up. */
function setting(
  option: string,
  example: string,
): (text: string, settings: Record<string, number>) => Record<string, number> {
  return (text, settings) => {
    const match = /^([A-Za-z]+)=(\d+)$/.exec(text);
    if (match === null) throw new InvalidArgumentError(`${option} takes name=integer, e.g. ${example}`);
    return { ...settings, [match[1]!]: Number(match[2]) };
  };
}

function parseOptions(): BenchOptions {
  const program = new Command('bench')
    .description('throughput and latency of a real pbft cluster on this machine')
    .option('--replicas <n>', 'replicas (3f+1)', integerArgument('--replicas', 4), 4)
    .option('--clients <n>', 'closed-loop clients, one account each', integerArgument('--clients', 1), 32)
    .option(
      '--duration <s>',
      `seconds measured (default ${DURATION_DEFAULT_S}; ${SOAK_DURATION_S} with --soak)`,
      integerArgument('--duration', 1),
    )
    .option(
      '--warmup <s>',
      'seconds of load before measuring',
      integerArgument('--warmup', 0),
      WARMUP_DEFAULT_S,
    )
    .option('--soak', `a ${SOAK_DURATION_S / 60}-minute run: print RSS every sample and judge it flat`, false)
    .option(
      '--sample-interval <s>',
      'seconds between RSS samples',
      integerArgument('--sample-interval', 1),
      SAMPLE_INTERVAL_DEFAULT_S,
    )
    .option(
      '--base-port <port>',
      'first loopback port',
      integerArgument('--base-port', 1024),
      BASE_PORT_DEFAULT,
    )
    .addOption(
      new Option('--load <where>', 'run the clients in a child process or in this one')
        .choices(['process', 'inline'])
        .default('process'),
    )
    .option(
      '--accounts-per-connection <n>',
      'clients that share one libp2p node and stream per replica (1: a node per client)',
      integerArgument('--accounts-per-connection', 1),
      ACCOUNTS_PER_CONNECTION_DEFAULT,
    )
    .option(
      '--protocol <name=value>',
      'override a protocol setting of cluster.json, e.g. batchSizeMax=64 (repeatable)',
      setting('--protocol', 'batchSizeMax=64'),
      {},
    )
    .option(
      '--runtime <name=value>',
      'override a runtime setting of cluster.json, e.g. verifyWorkers=1 (repeatable)',
      setting('--runtime', 'verifyWorkers=1'),
      {},
    )
    .option(
      '--cpu-prof <dir>',
      'write V8 CPU profiles of every replica (CPU.*.cpuprofile) and of the clients (load.cpuprofile)',
    )
    .option('--keep', 'keep the temporary cluster folder (logs, data)', false)
    .option('--json', 'print one JSON object as the last line', false)
    .parse(process.argv);
  const options = program.opts<BenchOptions>();
  if ((options.replicas - 1) % 3 !== 0) program.error('--replicas must be 3f+1 (4, 7, 10, …)');
  if (options.clients > 1_000 - SINK_ACCOUNTS)
    program.error(`--clients must be at most ${1_000 - SINK_ACCOUNTS}`);
  return options;
}

/** Single-threaded verifications per second of one backend (same key, like a replica's peers). */
function measureVerifyRate(backend: CryptoBackend): number {
  const signer = createSigner(randomBytes(32), backend);
  const verifier = createVerifier(backend);
  const message = randomBytes(VERIFY_MESSAGE_BYTES);
  const signature = signer.sign(message);
  // Warm up the JIT and the public-key cache outside the timed loop.
  for (let i = 0; i < VERIFY_CHUNK; i++) verifier.verify(signature, message, signer.publicKey);
  let verified = 0;
  const startMs = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < VERIFY_MEASURE_MS) {
    for (let i = 0; i < VERIFY_CHUNK; i++) {
      if (!verifier.verify(signature, message, signer.publicKey)) throw new Error(`${backend}: bad verify`);
    }
    verified += VERIFY_CHUNK;
    elapsedMs = performance.now() - startMs;
  }
  return Math.round((verified * 1000) / elapsedMs);
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function log(line: string): void {
  // Progress goes to stderr so that --json leaves stdout to the result alone.
  process.stderr.write(`bench: ${line}\n`);
}

/** Everything started so far, stopped in reverse order; safe to call twice (exit and Ctrl-C). */
class Cleanup {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | null = null;

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch(() => undefined);
    })();
    return this.running;
  }
}

async function waitUntilReady(cluster: ProcessCluster, observer: PbftClient): Promise<void> {
  const peers = cluster.replicas.length - 1;
  let last = '';
  await waitFor(
    'every replica to be connected to every other',
    async () => {
      const reports = await cluster.statuses(observer);
      last = formatStatuses(reports);
      return reports.every((report) => report.reachable && report.peersConnected === peers)
        ? true
        : undefined;
    },
    CLUSTER_READY_TIMEOUT_MS,
    () => last,
  );
}

/** CPU seconds the whole machine has spent busy (everything but idle and I/O wait), from /proc/stat. */
function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

function crashes(cluster: ProcessCluster): string[] {
  return cluster.replicas.flatMap((replica) => replica.unexpectedExits);
}

/**
 * A leak keeps growing; caches and V8's heap grow to their working size and stop, sometimes with a
 * last step when V8 enlarges the heap. So the first two thirds of a soak run are left to that, and
 * RSS counts as flat when, for every replica, the mean of the last few samples exceeds the mean of
 * the few at two thirds of the run by no more than the tolerance.
 */
function judgeSoak(samples: Sample[]): { rssFlat: boolean; rssGrowthMb: number[] } {
  const twoThirds = Math.floor((samples.length * 2) / 3);
  const around = samples.slice(Math.max(0, twoThirds - 1), twoThirds - 1 + SOAK_WINDOW_SAMPLES);
  const last = samples.slice(-SOAK_WINDOW_SAMPLES);
  if (samples.length < 2 * SOAK_WINDOW_SAMPLES) return { rssFlat: false, rssGrowthMb: [] };
  const mean = (window: Sample[], replica: number): number =>
    window.reduce((sum, sample) => sum + sample.rssMb[replica]!, 0) / window.length;
  const rssGrowthMb = last[0]!.rssMb.map((_, replica) => round(mean(last, replica) - mean(around, replica)));
  const rssFlat = rssGrowthMb.every(
    (growth, replica) =>
      growth <= Math.max(RSS_FLAT_TOLERANCE_MB, RSS_FLAT_TOLERANCE_FRACTION * mean(around, replica)),
  );
  return { rssFlat, rssGrowthMb };
}

async function run(options: BenchOptions, cleanup: Cleanup): Promise<BenchResult> {
  const durationS = options.duration ?? (options.soak ? SOAK_DURATION_S : DURATION_DEFAULT_S);
  const cores = availableParallelism();
  // Replicas left by another run (a testnet, a chaos run, an interrupted test) share the CPU.
  const strangers = otherReplicaProcesses();
  if (strangers.length > 0) {
    const pids = strangers.map((found) => found.pid).join(', ');
    log(
      `warning: ${strangers.length} other pbft replica processes are running (pids ${pids}); ` +
        'they compete for the CPU, so the numbers will be low',
    );
  }
  log('measuring ed25519 verification rates (1 s per backend)');
  const verifyPerSecNative = measureVerifyRate('native');
  const verifyPerSecNoble = measureVerifyRate('noble');
  const ceilingTxPerSec = (cores * verifyPerSecNative) / options.replicas;

  const dir = await mkdtemp(join(tmpdir(), 'pbft-bench-'));
  if (!options.keep) cleanup.add(() => rm(dir, { recursive: true, force: true }));
  else log(`cluster folder: ${dir}`);
  const cluster = await ProcessCluster.create({
    dir,
    replicas: options.replicas,
    basePort: options.basePort,
    accounts: options.clients + SINK_ACCOUNTS,
    protocol: options.protocol,
    runtime: options.runtime,
  });
  cleanup.add(() => cluster.stopAll());
  if (options.cpuProf !== undefined) {
    // Replicas inherit the environment; a profile is written when a replica exits cleanly.
    process.env['NODE_OPTIONS'] = `--cpu-prof --cpu-prof-dir=${options.cpuProf}`;
  }
  log(`starting ${options.replicas} replicas on ports ${options.basePort}+`);
  cluster.startAll();
  delete process.env['NODE_OPTIONS'];
  const observer = await cluster.client(null, CLIENT_TIMEOUT_MS);
  cleanup.add(() => observer.close());
  await waitUntilReady(cluster, observer);

  const clientAccounts = cluster.accounts.slice(0, options.clients);
  const sinks = cluster.accounts.slice(options.clients);
  const loadOptions: LoadOptions = {
    clusterFile: cluster.config.path,
    accounts: clientAccounts.map((account) => ({
      keyFile: join(cluster.dir, 'accounts', `${account.name}.json`),
      counterFile: account.counterFile,
    })),
    sinkAddresses: sinks.map((account) => account.key.publicKeyHex),
    clientTimeoutMs: CLIENT_TIMEOUT_MS,
    accountsPerConnection: options.accountsPerConnection,
  };
  log(`connecting ${options.clients} clients (${options.load})`);
  const loadProfileArgs =
    options.cpuProf === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProf}`, '--cpu-prof-name=load.cpuprofile'];
  const load: LoadDriver =
    options.load === 'process'
      ? await startLoadProcess(loadOptions, loadProfileArgs)
      : await startLoadInProcess(loadOptions);
  cleanup.add(() => load.stop());

  log(`warming up for ${options.warmup} s`);
  await sleep(options.warmup * 1000);
  await load.collect();
  const replicaStart = cluster.replicas.map((replica) => replica.sample()?.cpuSeconds ?? 0);
  const loadCpuStart = load.cpuSeconds();
  const benchCpuStart = process.cpuUsage();
  const machineBusyStart = machineBusySeconds();
  const startMs = performance.now();

  log(`measuring for ${durationS} s`);
  const measured: LoadWindow = { completed: 0, errors: 0, latenciesMs: [], lastError: null };
  const samples: Sample[] = [];
  let elapsedS = 0;
  while (elapsedS < durationS) {
    const stepS = Math.min(options.sampleInterval, durationS - elapsedS);
    const windowStartMs = performance.now();
    await sleep(stepS * 1000);
    const window = await load.collect();
    const windowS = (performance.now() - windowStartMs) / 1000;
    elapsedS = (performance.now() - startMs) / 1000;
    measured.completed += window.completed;
    measured.errors += window.errors;
    for (const latencyMs of window.latenciesMs) measured.latenciesMs.push(latencyMs);
    measured.lastError = window.lastError ?? measured.lastError;
    const reports = await cluster.statuses(observer).catch(() => []);
    const sample: Sample = {
      atS: round(elapsedS),
      rssMb: cluster.replicas.map((replica) => round(replica.sample()?.rssMb ?? 0)),
      txPerSec: round(window.completed / windowS),
      stableCheckpoint: reports.map((report) => report.stableCheckpoint ?? -1),
    };
    samples.push(sample);
    if (options.soak) {
      log(
        `t=${sample.atS}s ${sample.txPerSec} tx/s rss ${sample.rssMb.join('/')} MiB h ${sample.stableCheckpoint.join('/')}`,
      );
    }
    const crashed = crashes(cluster);
    if (crashed.length > 0) throw new Error(crashed.join('; '));
  }
  const wallS = (performance.now() - startMs) / 1000;
  const replicaCpuSeconds = cluster.replicas.map(
    (replica, index) => (replica.sample()?.cpuSeconds ?? 0) - replicaStart[index]!,
  );
  const loadCpuSeconds = load.cpuSeconds() - loadCpuStart;
  const benchCpu = process.cpuUsage(benchCpuStart);
  const benchCpuSeconds = (benchCpu.user + benchCpu.system) / 1e6;
  const ownCpuSeconds =
    replicaCpuSeconds.reduce((sum, seconds) => sum + seconds, 0) +
    (options.load === 'process' ? loadCpuSeconds : 0) +
    benchCpuSeconds;
  const otherCpuPercent = round(
    (PERCENT * Math.max(0, machineBusySeconds() - machineBusyStart - ownCpuSeconds)) / wallS,
  );
  if (otherCpuPercent > OTHER_CPU_WARNING_PERCENT) {
    log(`warning: other processes used ${otherCpuPercent}% of a core meanwhile; the numbers are low`);
  }
  const cpuPercentPerReplica = replicaCpuSeconds.map((seconds) => round((PERCENT * seconds) / wallS));
  const loadCpuPercent = round((PERCENT * loadCpuSeconds) / wallS);
  const benchCpuPercent = round((PERCENT * benchCpuSeconds) / wallS);
  const rssMbMax = round(Math.max(...cluster.replicas.map((replica) => replica.sample()?.rssPeakMb ?? 0)));
  if (measured.errors > 0) log(`${measured.errors} transfers failed; last: ${measured.lastError}`);

  const sorted = measured.latenciesMs.sort((a, b) => a - b);
  const txPerSec = measured.completed / wallS;
  const meanMs = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
  const replicaCpuSecondsTotal = replicaCpuSeconds.reduce((sum, seconds) => sum + seconds, 0);
  const committed = Math.max(1, measured.completed);
  return {
    replicas: options.replicas,
    clients: options.clients,
    durationS: round(wallS),
    warmupS: options.warmup,
    load: options.load,
    accountsPerConnection: options.accountsPerConnection,
    overrides: {
      ...Object.fromEntries(
        Object.entries(options.protocol).map(([name, value]) => [`protocol.${name}`, value]),
      ),
      ...Object.fromEntries(
        Object.entries(options.runtime).map(([name, value]) => [`runtime.${name}`, value]),
      ),
    },
    transfers: measured.completed,
    errors: measured.errors,
    txPerSec: round(txPerSec),
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    meanMs: round(meanMs),
    cpuPercentPerReplica,
    loadCpuPercent,
    benchCpuPercent,
    otherCpuPercent,
    otherReplicaProcesses: strangers.length,
    rssMbMax,
    verifyPerSecNative,
    verifyPerSecNoble,
    cores,
    ceilingTxPerSec: round(ceilingTxPerSec),
    ratio: round(txPerSec / ceilingTxPerSec, 3),
    cpuMsPerTransfer: round((1000 * ownCpuSeconds) / committed, 3),
    replicaCpuMsPerTransfer: round((1000 * replicaCpuSecondsTotal) / committed, 3),
    verifyMsPerTransfer: round((1000 * options.replicas) / verifyPerSecNative, 3),
    node: process.version,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    ...(options.soak ? { soak: { samples, ...judgeSoak(samples) } } : {}),
  };
}

function formatHuman(result: BenchResult): string {
  const rows: Array<[string, string]> = [
    [
      'replicas / clients',
      `${result.replicas} / ${result.clients} (load ${result.load}, ${result.accountsPerConnection} per connection)`,
    ],
    ...(Object.keys(result.overrides).length === 0
      ? []
      : [
          [
            'settings changed',
            Object.entries(result.overrides)
              .map(([name, value]) => `${name}=${value}`)
              .join(', '),
          ] as [string, string],
        ]),
    ['measured', `${result.durationS} s after ${result.warmupS} s warm-up`],
    ['throughput', `${result.txPerSec} transfers/s (${result.transfers} committed, ${result.errors} failed)`],
    ['latency', `p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, mean ${result.meanMs} ms`],
    ['CPU per replica', `${result.cpuPercentPerReplica.map((cpu) => `${cpu}%`).join(' ')} of a core`],
    ['CPU of the clients', `${result.loadCpuPercent}% (benchmark process ${result.benchCpuPercent}%)`],
    ['CPU of other processes', `${result.otherCpuPercent}% (not ours: a busy machine lowers every number)`],
    ...(result.otherReplicaProcesses === 0
      ? []
      : [
          [
            'other replicas',
            `${result.otherReplicaProcesses} pbft replica processes of another run were running`,
          ] as [string, string],
        ]),
    ['peak RSS', `${result.rssMbMax} MiB (largest replica)`],
    [
      'ed25519 verify',
      `${result.verifyPerSecNative}/s native, ${result.verifyPerSecNoble}/s noble (one core)`,
    ],
    [
      'signature ceiling',
      `${result.ceilingTxPerSec} transfers/s = ${result.cores} cores × ${result.verifyPerSecNative} ÷ ${result.replicas} replicas`,
    ],
    ['ratio', `${result.ratio} of the ceiling`],
    ['CPU per transfer', `${result.cpuMsPerTransfer} ms (replicas ${result.replicaCpuMsPerTransfer} ms)`],
    [
      `at ratio ${RATIO_TARGET}`,
      `at most ${round(result.verifyMsPerTransfer / RATIO_TARGET, 3)} ms per transfer with every core busy ` +
        `(the ceiling counts ${result.verifyMsPerTransfer} ms of verification)`,
    ],
  ];
  if (result.soak !== undefined) {
    rows.push([
      'soak RSS',
      `${result.soak.rssFlat ? 'flat' : 'GROWING'}: growth over the last third ${result.soak.rssGrowthMb.join(' / ')} MiB`,
    ]);
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n');
}

const options = parseOptions();
const cleanup = new Cleanup();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    process.stderr.write(`bench: ${signal}, stopping the cluster\n`);
    void cleanup.run().then(() => process.exit(130));
  });
}
try {
  const result = await run(options, cleanup);
  await cleanup.run();
  process.stdout.write(`${options.json ? JSON.stringify(result) : formatHuman(result)}\n`);
} catch (error) {
  await cleanup.run();
  if (!interrupted) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}
// Clients closed with transfers in flight still hold retry timers (with --load inline).
if (!interrupted) process.exit();
