/**
 * The `pbft` command line (DESIGN §5). `--json` on every command prints one JSON object on stdout;
 * errors are one line on stderr with a non-zero exit code (see exit-codes.ts).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  isByzantineBehaviour,
} from '../byzantine/strategies.ts';
import type { PbftClient } from '../client/client.ts';
import { PbftClientError, TransferRejectedError } from '../client/errors.ts';
import { generateSeed, KeyFileError, readKeyFile, writeKeyFile } from '../crypto/index.ts';
import { GenesisError } from '../ledger/genesis.ts';
import { ConfigFileError, LOG_LEVELS, readClusterConfig } from '../node/cluster-config.ts';
import {
  CliError,
  EXIT_CONFIG,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_REJECTED,
  EXIT_STORAGE_DAMAGED,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
} from './exit-codes.ts';
import { exitWithParent } from './process-groups.ts';

// What only some commands need is imported by them (`await import`), so that a command loads only
// its own modules: the client and libp2p for transfer, balance and status; the replica, LevelDB and
// the logger for node; the testnet's for testnet. A `pbft transfer` loads about 600 modules instead
// of 760 with everything imported here, and no prom-client, LevelDB or replica core.
const DEFAULT_CLUSTER_FILE = join('testnet', 'cluster.json');

function print(json: boolean, value: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

function integerArgument(name: string, min: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    }
    return Number(value);
  };
}

function addressArgument(value: string): string {
  if (!/^[0-9a-f]{64}$/.test(value))
    throw new InvalidArgumentError('an address is 64 lowercase hex characters');
  return value;
}

/** Parses INDEX:BEHAVIOUR and collects repeated --byzantine options. */
function byzantineAssignment(
  value: string,
  previous: Map<number, ByzantineBehaviour>,
): Map<number, ByzantineBehaviour> {
  const match = /^(\d+):([a-z-]+)$/.exec(value);
  const behaviour = match?.[2];
  if (match === null || behaviour === undefined || !isByzantineBehaviour(behaviour)) {
    throw new InvalidArgumentError(
      `expected INDEX:BEHAVIOUR with BEHAVIOUR one of ${BYZANTINE_BEHAVIOURS.join(', ')}`,
    );
  }
  return new Map(previous).set(Number(match[1]), behaviour);
}

function counterFileFor(keyFile: string): string {
  return `${resolve(keyFile).replace(/\.json$/, '')}.counter`;
}

/**
 * The close of the one connection a client command opened, started once the command has its answer.
 * It is not waited for: the replicas lose nothing when a client goes (its requests are answered or
 * were never sent, and its request counter is on disk before a request leaves), and waiting for
 * libp2p to shut down gracefully would add to every command. Once the command is done, the process
 * exits as soon as stdout and stderr are written (`exitOnceWritten`).
 */
let closingInBackground: Promise<void> | null = null;

function closeInBackground(client: PbftClient): void {
  closingInBackground = client.close().catch(() => undefined);
}

async function connect(clusterFile: string, keyFile?: string): Promise<PbftClient> {
  const [cluster, { PbftClient }] = await Promise.all([
    readClusterConfig(clusterFile),
    import('../client/client.ts'),
  ]);
  const key = keyFile === undefined ? undefined : readKeyFile(keyFile);
  return PbftClient.connect({
    cluster,
    ...(key === undefined ? {} : { key, counterFile: counterFileFor(keyFile!) }),
  });
}

const program = new Command('pbft')
  .description('A Byzantine-fault-tolerant replicated ledger (PBFT with ed25519 signatures)')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program
  .command('keygen')
  .description('write a new ed25519 key file and print its public key')
  .requiredOption('--out <file>', 'where to write the key file (mode 0600)')
  .option('--force', 'replace an existing file', false)
  .option('--json', 'print one JSON object', false)
  .action((options: { out: string; force: boolean; json: boolean }) => {
    if (!options.force && existsSync(options.out)) {
      throw new CliError(EXIT_CONFIG, `${options.out} already exists (use --force to replace it)`);
    }
    const key = writeKeyFile(options.out, generateSeed(), { force: options.force, withAddress: true });
    print(options.json, { file: resolve(options.out), publicKey: key.publicKeyHex }, key.publicKeyHex);
  });

const testnet = program.command('testnet').description('a local multi-replica cluster on loopback');

testnet
  .command('init')
  .description('create a testnet: cluster.json, genesis.json, replica homes and funded accounts')
  .option('--dir <dir>', 'folder for the testnet', 'testnet')
  .option('--replicas <n>', 'number of replicas (3f+1)', integerArgument('--replicas', 4), 4)
  .option(
    '--base-port <port>',
    'first TCP port; replica i listens on base+i',
    integerArgument('--base-port', 1024),
    9000,
  )
  .option('--accounts <n>', 'funded development accounts', integerArgument('--accounts', 1), 4)
  .option('--force', 'replace an existing testnet', false)
  .option('--json', 'print one JSON object', false)
  .action(
    async (options: {
      dir: string;
      replicas: number;
      basePort: number;
      accounts: number;
      force: boolean;
      json: boolean;
    }) => {
      const { initTestnet } = await import('./testnet.ts');
      const result = await initTestnet(options);
      const lines = [
        `testnet with ${result.replicas.length} replicas in ${result.dir}`,
        ...result.replicas.map((replica) => `  replica ${replica.id}  ${replica.multiaddr}  ${replica.home}`),
        'accounts:',
        ...result.accounts.map(
          (account) => `  ${account.name.padEnd(6)} ${account.address}  ${account.file}`,
        ),
        `start it with: pbft testnet start --dir ${options.dir}`,
      ];
      print(options.json, result, lines.join('\n'));
    },
  );

testnet
  .command('start')
  .description('run every replica of a testnet as a child process; Ctrl-C stops them')
  .option('--dir <dir>', 'folder of the testnet', 'testnet')
  .option('--init', 'create the testnet first if it does not exist', false)
  .option(
    '--byzantine <index:behaviour>',
    `make replica INDEX lie (repeatable; testnets only): ${BYZANTINE_BEHAVIOURS.join(', ')}`,
    byzantineAssignment,
    new Map<number, ByzantineBehaviour>(),
  )
  .action(async (options: { dir: string; init: boolean; byzantine: Map<number, ByzantineBehaviour> }) => {
    // Started by a test or a script: stop (and stop the replicas) once it is gone.
    exitWithParent();
    const { initTestnet, startTestnet } = await import('./testnet.ts');
    const clusterFile = join(options.dir, 'cluster.json');
    if (!existsSync(clusterFile)) {
      if (!options.init)
        throw new CliError(
          EXIT_CONFIG,
          `${clusterFile} not found (run \`pbft testnet init --dir ${options.dir}\` first)`,
        );
      const created = await initTestnet({
        dir: options.dir,
        replicas: 4,
        basePort: 9000,
        accounts: 4,
        force: false,
      });
      process.stdout.write(`created a 4-replica testnet in ${created.dir}\n`);
      for (const account of created.accounts)
        process.stdout.write(`  ${account.name.padEnd(6)} ${account.address}  ${account.file}\n`);
    }
    const cluster = await readClusterConfig(clusterFile);
    if (options.byzantine.size > 0 && !cluster.testnet) {
      throw new CliError(EXIT_CONFIG, `${cluster.path}: field "testnet" is false, so --byzantine is refused`);
    }
    if (options.byzantine.size > cluster.f) {
      process.stderr.write(
        `pbft: warning: ${options.byzantine.size} liars exceed f = ${cluster.f}; PBFT promises nothing then\n`,
      );
    }
    const extraArgs = new Map<number, string[]>();
    for (const [index, behaviour] of options.byzantine) {
      if (index >= cluster.replicas.length)
        throw new CliError(EXIT_USAGE, `--byzantine ${index}:${behaviour}: no replica ${index}`);
      extraArgs.set(index, ['--byzantine', behaviour]);
    }
    await startTestnet(cluster, {
      dir: options.dir,
      extraArgs,
      out: (line) => process.stdout.write(`${line}\n`),
    });
  });

/** Collects repeated --host options; each may also be a comma-separated list. */
function hostList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((host) => host.trim())];
}

const cluster = program.command('cluster').description('a cluster across machines: one replica per host');

cluster
  .command('init')
  .description('write one folder per replica (its key, cluster.json, genesis.json) and a client folder')
  .requiredOption('--dir <dir>', 'new folder for the cluster: DIR/replica-I for host I, DIR/client')
  .requiredOption(
    '--host <host[:port]>',
    'the host of the next replica (IP address or DNS name; repeat, or a,b,c): 3f+1 hosts',
    hostList,
  )
  .option('--port <port>', 'TCP port of hosts given without one', integerArgument('--port', 1), 9000)
  .option(
    '--metrics-port <port>',
    "Prometheus port on each machine's 127.0.0.1 (0: none)",
    integerArgument('--metrics-port', 0),
    9464,
  )
  .option(
    '--accounts <n>',
    'funded accounts, keys in DIR/client/accounts',
    integerArgument('--accounts', 1),
    4,
  )
  .option('--name <name>', 'a label for the cluster', 'pbft')
  .option('--force', 'replace a cluster written before in DIR', false)
  .option('--json', 'print one JSON object', false)
  .action(
    async (options: {
      dir: string;
      host: string[];
      port: number;
      metricsPort: number;
      accounts: number;
      name: string;
      force: boolean;
      json: boolean;
    }) => {
      const { initCluster } = await import('./cluster.ts');
      const result = await initCluster({ ...options, hosts: options.host });
      const lines = [
        `cluster of ${result.replicas.length} replicas (f = ${(result.replicas.length - 1) / 3}) in ${result.dir}`,
        ...result.replicas.map((replica) => `  replica ${replica.id}  ${replica.multiaddr}  ${replica.home}`),
        'copy each replica-I folder to its host, open its TCP port to the others and to clients, and run there:',
        '  pbft node --home FOLDER',
        `clients use ${result.client.dir}: pbft status --cluster ${result.client.clusterFile}`,
        ...result.accounts.map(
          (account) => `  ${account.name.padEnd(6)} ${account.address}  ${account.file}`,
        ),
      ];
      print(options.json, result, lines.join('\n'));
    },
  );

program
  .command('node')
  .description('run one replica in the foreground')
  .requiredOption('--home <dir>', 'the replica home (key.json, data/)')
  .option('--cluster <file>', 'cluster.json (default: HOME/cluster.json, else HOME/../cluster.json)')
  .addOption(
    new Option(
      '--log-level <level>',
      "log level (default: cluster.json's runtime.logLevel, else info)",
    ).choices([...LOG_LEVELS]),
  )
  .addOption(
    new Option('--byzantine <behaviour>', 'run as a lying replica (testnets only)').choices([
      ...BYZANTINE_BEHAVIOURS,
    ]),
  )
  .option(
    '--recover',
    'distrust data/ (e.g. a restored old copy): set it aside, start empty and vote on nothing until recovered',
    false,
  )
  .action(
    async (options: {
      home: string;
      cluster?: string;
      logLevel?: string;
      byzantine?: ByzantineBehaviour;
      recover: boolean;
    }) => {
      // A replica of a test cluster stops once the process that started it is gone, even if that
      // process was killed with SIGKILL and could not stop it.
      exitWithParent();
      const [{ startReplica }, { StorageDamagedError, StorageError }] = await Promise.all([
        import('../node/replica-node.ts'),
        import('../storage/level.ts'),
      ]);
      try {
        // A home of `pbft cluster init` holds its own copy; a testnet's is beside the homes.
        const clusterFile =
          options.cluster ??
          (existsSync(join(options.home, 'cluster.json')) ? join(options.home, 'cluster.json') : undefined);
        const node = await startReplica({
          home: options.home,
          ...(clusterFile === undefined ? {} : { cluster: clusterFile }),
          ...(options.byzantine === undefined ? {} : { byzantine: options.byzantine }),
          ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
          recover: options.recover,
        });
        await new Promise<void>((resolveStop) => {
          const stop = (): void => {
            void node.stop().then(resolveStop);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      } catch (error) {
        // Only this command opens storage, so only it knows storage's errors (see `exitCodeOf`).
        if (error instanceof StorageDamagedError) throw new CliError(EXIT_STORAGE_DAMAGED, error.message);
        if (error instanceof StorageError) throw new CliError(EXIT_CONFIG, error.message);
        throw error;
      }
    },
  );

program
  .command('transfer')
  .description('transfer funds; waits for f+1 matching replies')
  .requiredOption('--from <keyfile>', 'key file of the sending account')
  .requiredOption('--to <address>', 'receiving address (64 hex characters)', addressArgument)
  .requiredOption('--amount <n>', 'a positive integer', integerArgument('--amount', 1))
  .option('--cluster <file>', 'cluster.json', DEFAULT_CLUSTER_FILE)
  .option('--json', 'print one JSON object', false)
  .action(async (options: { from: string; to: string; amount: number; cluster: string; json: boolean }) => {
    const client = await connect(options.cluster, options.from);
    try {
      const receipt = await client.transfer(options.to, options.amount);
      print(
        options.json,
        {
          status: 'ok',
          result: { balance: receipt.balance },
          seq: receipt.seq,
          view: receipt.view,
          t: receipt.t,
        },
        `transferred ${options.amount} to ${options.to}: committed at sequence ${receipt.seq} (view ${receipt.view}); sender balance ${receipt.balance}`,
      );
    } catch (error) {
      if (error instanceof TransferRejectedError && options.json) {
        process.stdout.write(
          `${JSON.stringify({ status: 'rejected', result: { reason: error.reason, message: error.detail }, seq: error.seq })}\n`,
        );
      }
      throw error;
    } finally {
      closeInBackground(client);
    }
  });

program
  .command('balance')
  .description('the balance of an address, as 2f+1 replicas agree')
  .argument('<address>', 'account address (64 hex characters)', addressArgument)
  .option('--cluster <file>', 'cluster.json', DEFAULT_CLUSTER_FILE)
  .option(
    '--linearizable',
    'order the read through consensus: it sees every transfer committed before it',
    false,
  )
  .option('--json', 'print one JSON object', false)
  .action(async (address: string, options: { cluster: string; json: boolean; linearizable: boolean }) => {
    const client = await connect(options.cluster);
    try {
      const answer = await client.balance(address, { linearizable: options.linearizable });
      print(
        options.json,
        { address, balance: answer.balance, exists: answer.exists, via: answer.via },
        answer.exists ? `${answer.balance}` : `${answer.balance} (no such account yet)`,
      );
    } finally {
      closeInBackground(client);
    }
  });

program
  .command('status')
  .description('view, primary, progress and connectivity of every replica')
  .option('--cluster <file>', 'cluster.json', DEFAULT_CLUSTER_FILE)
  .option('--json', 'print one JSON object', false)
  .action(async (options: { cluster: string; json: boolean }) => {
    const [cluster, { PbftClient }, { formatStatusLine }] = await Promise.all([
      readClusterConfig(options.cluster),
      import('../client/client.ts'),
      import('./testnet.ts'),
    ]);
    const client = await PbftClient.connect({ cluster }).catch((error: unknown) => {
      if (error instanceof PbftClientError && error.code === 'UNREACHABLE') return null;
      throw error;
    });
    const replicas =
      client === null
        ? cluster.replicas.map((replica) => ({ id: replica.id, reachable: false }))
        : await client.status();
    if (client !== null) closeInBackground(client);
    print(options.json, { replicas }, replicas.map(formatStatusLine).join('\n'));
    if (replicas.every((replica) => !replica.reachable)) {
      throw new CliError(EXIT_UNREACHABLE, `no replica of ${cluster.path} is reachable`);
    }
  });

/** Storage's errors are mapped by `pbft node`, the one command that loads storage. */
function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof ConfigFileError || error instanceof KeyFileError || error instanceof GenesisError) {
    return EXIT_CONFIG;
  }
  if (error instanceof TransferRejectedError) return EXIT_REJECTED;
  if (error instanceof PbftClientError) return error.code === 'REJECTED' ? EXIT_REJECTED : EXIT_UNREACHABLE;
  return EXIT_FAILURE;
}

/** Exit with `code` once everything written to stdout and stderr so far has been handed to the OS. */
function exitOnceWritten(code: number): void {
  let unflushed = 2;
  const flushed = (): void => {
    if (--unflushed === 0) process.exit(code);
  };
  process.stdout.write('', flushed);
  process.stderr.write('', flushed);
}

try {
  await program.parseAsync(process.argv);
  process.exitCode = EXIT_OK;
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has already printed the message (or the help text).
    process.exitCode = error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  } else {
    const message = (error as Error).message.split('\n')[0];
    process.stderr.write(`pbft: ${message}\n`);
    process.exitCode = exitCodeOf(error);
  }
}
// Other commands end when nothing is left to do (`node` and `testnet start` once they have stopped).
if (closingInBackground !== null) exitOnceWritten(Number(process.exitCode));
