/**
 * node scripts/cli-latency.ts [--runs 10] [--replicas 4] [--base-port 19600] [--bin FILE]... [--json]
 *
 * How long one `pbft` command takes from a fresh process, end to end, as a user running it in a
 * shell sees it: a 4-replica testnet of real `pbft node` processes is started in a temporary folder,
 * then each command is run `--runs` times, one after the other, each in a new `node bin/pbft.js`
 * process, and the wall time from spawn to exit is reported (min / median / max):
 *
 *   transfer   `pbft transfer` of 1 unit from alice to bob: committed (f+1 matching replies) and printed
 *   balance    `pbft balance` of bob (2f+1 matching answers)
 *   help       `pbft --help`: start-up and module loading alone, no network
 *
 * Each command is run once before the measured runs and that run is not counted: it fills Node's
 * compile cache (bin/pbft.js enables it), as any earlier use of `pbft` on this machine would have.
 * `--bin` (repeatable) measures other launchers too, e.g. the bin/pbft.js of an older checkout, each
 * against the same testnet; their runs alternate, so that a machine busy with something else slows
 * them all alike. The testnet's replicas always run this checkout's bin/pbft.js.
 * With `NODE_DISABLE_COMPILE_CACHE=1` in the environment every run compiles from scratch.
 * Every run must exit 0 and print what the command prints on success; otherwise the script stops
 * with exit code 1. Processes and the temporary folder are removed on exit and on Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { integerOption } from './lib/options.ts';
import { ProcessCluster, waitFor } from './lib/process-cluster.ts';

const BIN = fileURLToPath(new URL('../bin/pbft.js', import.meta.url));
/** One command that has not exited after this long is a failure, not a slow run. */
const RUN_TIMEOUT_MS = 30_000;
/** How long the fresh testnet may take to commit a first transfer. */
const CLUSTER_READY_TIMEOUT_MS = 30_000;

interface Run {
  wallMs: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Measured {
  command: string;
  bin: string;
  runs: number;
  minMs: number;
  medianMs: number;
  maxMs: number;
}

function usage(message: string): never {
  process.stderr.write(`cli-latency: ${message}\n`);
  process.exit(2);
}

/** One `node BIN ARGS` process, timed from spawn to exit. */
function runPbft(bin: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const startedMs = performance.now();
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ wallMs: performance.now() - startedMs, code, stdout, stderr });
    });
  });
}

function median(sorted: readonly number[]): number {
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Runs `args` with every launcher once unmeasured, then `runs` more times, the launchers taking
 * turns; each run must succeed and print `expected`.
 */
async function measure(
  command: string,
  args: readonly string[],
  expected: RegExp,
  bins: readonly string[],
  runs: number,
): Promise<Measured[]> {
  const times = bins.map((): number[] => []);
  for (let run = 0; run <= runs; run++) {
    for (const [index, bin] of bins.entries()) {
      const result = await runPbft(bin, args);
      if (result.code !== 0 || !expected.test(result.stdout)) {
        throw new Error(
          `${bin} ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
        );
      }
      if (run > 0) times[index]!.push(result.wallMs);
    }
  }
  return bins.map((bin, index) => {
    const sorted = times[index]!.sort((a, b) => a - b);
    return { command, bin, runs, minMs: sorted[0]!, medianMs: median(sorted), maxMs: sorted.at(-1)! };
  });
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    replicas: { type: 'string' },
    'base-port': { type: 'string' },
    bin: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
});
const runs = integerOption(values.runs, 'runs', 10, 1, usage);
const replicas = integerOption(values.replicas, 'replicas', 4, 4, usage);
const basePort = integerOption(values['base-port'], 'base-port', 19_600, 1024, usage);
const bins = [BIN, ...(values.bin ?? []).map((bin) => resolve(bin))];

const dir = await mkdtemp(join(tmpdir(), 'pbft-cli-latency-'));
const cluster = await ProcessCluster.create({ dir, replicas, basePort, accounts: 2 });
const cleanUp = async (): Promise<void> => {
  await cluster.stopAll();
  await rm(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));

let exitCode = 0;
try {
  cluster.startAll();
  const clusterFile = join(cluster.dir, 'cluster.json');
  const [alice, bob] = cluster.accounts.map((account) => ({
    file: join(cluster.dir, 'accounts', `${account.name}.json`),
    address: account.key.publicKeyHex,
  }));
  const transfer = ['transfer', '--from', alice!.file, '--to', bob!.address, '--amount', '1'];
  await waitFor(
    'the testnet to commit a first transfer',
    async () => ((await runPbft(BIN, [...transfer, '--cluster', clusterFile])).code === 0 ? true : undefined),
    CLUSTER_READY_TIMEOUT_MS,
  );
  const results = [
    ...(await measure(
      'transfer',
      [...transfer, '--cluster', clusterFile],
      /committed at sequence/,
      bins,
      runs,
    )),
    ...(await measure('balance', ['balance', bob!.address, '--cluster', clusterFile], /^\d+/, bins, runs)),
    ...(await measure('help', ['--help'], /Usage: pbft/, bins, runs)),
  ];
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ replicas, runs, results })}\n`);
  } else {
    process.stdout.write(`pbft commands, ${runs} runs each, ${replicas} replicas on loopback (wall ms)\n`);
    for (const result of results) {
      const ms = (value: number): string => value.toFixed(0).padStart(5);
      process.stdout.write(
        `  ${result.command.padEnd(9)} min ${ms(result.minMs)}  median ${ms(result.medianMs)}  max ${ms(result.maxMs)}` +
          `${bins.length > 1 ? `  ${result.bin}` : ''}\n`,
      );
    }
  }
} catch (error) {
  process.stderr.write(`cli-latency: ${(error as Error).message}\n`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
