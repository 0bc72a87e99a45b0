/**
 * The client commands as a user runs them: `pbft transfer`, `balance`, `status` and `keygen`, each a
 * fresh process against a 4-replica testnet of real `pbft node` processes. What they print (one
 * line, or one JSON object with --json), their exit codes (src/cli/exit-codes.ts), that they exit
 * once their answer is printed even through a pipe, and that a client command loads the client
 * alone: no replica core, LevelDB or prom-client (each command imports what it needs).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTestnet } from '../../../src/cli/testnet.ts';
import { metricsUrl } from '../../../src/node/metrics.ts';
import { PBFT_BIN, startReplicaProcess, type TestReplicaProcess } from '../../e2e/helpers.ts';

const RECORD_LOADS = fileURLToPath(new URL('./fixtures/record-loads.ts', import.meta.url));
/**
 * 15000-15999, below every range in test/e2e/helpers.ts TEST_PORT_RANGES (which this file should
 * join); 16 ports per run: the testnet's 8, then 8 nobody listens on for the unreachable cluster.
 */
const BASE_PORT = 15_000 + (process.pid % 62) * 16;
const UNREACHABLE_PORT_OFFSET = 8;
const READY_TIMEOUT_MS = 30_000;
const BALANCE = 1_000_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function pbft(args: readonly string[], options: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), PBFT_BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let dir = '';
let clusterFile = '';
let unreachableFile = '';
let alice = { file: '', address: '' };
let bob = { file: '', address: '' };
const replicas: TestReplicaProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-cli-'));
  const init = await initTestnet({ dir, replicas: 4, basePort: BASE_PORT, accounts: 2, force: false });
  clusterFile = init.clusterFile;
  alice = init.accounts[0]!;
  bob = init.accounts[1]!;
  // The same cluster at ports nobody listens on.
  const json = JSON.parse(await readFile(clusterFile, 'utf8')) as {
    replicas: Array<{ id: number; multiaddrs: string[] }>;
  };
  for (const replica of json.replicas)
    replica.multiaddrs = [`/ip4/127.0.0.1/tcp/${BASE_PORT + UNREACHABLE_PORT_OFFSET + replica.id}`];
  unreachableFile = join(dir, 'unreachable.json');
  await writeFile(unreachableFile, `${JSON.stringify(json, null, 2)}\n`);
  for (let id = 0; id < 4; id++) replicas.push(startReplicaProcess(dir, id));
  // Ready once every replica answers a status probe.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const status = await pbft(['status', '--cluster', clusterFile, '--json']);
    const report =
      status.code === 0 ? (JSON.parse(status.stdout) as { replicas: Array<{ reachable: boolean }> }) : null;
    if (report?.replicas.every((replica) => replica.reachable)) break;
    if (Date.now() > deadline) throw new Error(`the testnet did not come up: ${status.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
});

afterAll(async () => {
  await Promise.all(replicas.map((replica) => replica.kill9()));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('pbft transfer', () => {
  it('prints the committed transfer in one line and exits 0; with --json one object', async () => {
    const human = await pbft([
      'transfer',
      '--from',
      alice.file,
      '--to',
      bob.address,
      '--amount',
      '5',
      '--cluster',
      clusterFile,
    ]);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toMatch(
      new RegExp(
        `^transferred 5 to ${bob.address}: committed at sequence \\d+ \\(view \\d+\\); sender balance ${BALANCE - 5}\\n$`,
      ),
    );
    const json = await pbft([
      'transfer',
      ...['--from', alice.file, '--to', bob.address, '--amount', '7', '--cluster', clusterFile, '--json'],
    ]);
    expect(json).toMatchObject({ code: 0, stderr: '' });
    expect(json.stdout.endsWith('\n')).toBe(true);
    const receipt = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(Object.keys(receipt)).toEqual(['status', 'result', 'seq', 'view', 't']);
    expect(receipt).toMatchObject({ status: 'ok', result: { balance: BALANCE - 12 }, view: 0 });
    // The request counter is kept next to the key file.
    expect(existsSync(alice.file.replace(/\.json$/, '.counter'))).toBe(true);
  });

  it('exits 5 for a rejected transfer: one line on stderr, and with --json the rejection on stdout', async () => {
    const args = ['transfer', '--from', bob.file, '--to', alice.address, '--amount', String(10 * BALANCE)];
    const human = await pbft([...args, '--cluster', clusterFile]);
    expect(human.code).toBe(5);
    expect(human.stdout).toBe('');
    expect(human.stderr).toMatch(/^pbft: transfer rejected \(insufficient-funds\): [^\n]+\n$/);
    const json = await pbft([...args, '--cluster', clusterFile, '--json']);
    expect(json.code).toBe(5);
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: 'rejected',
      result: { reason: 'insufficient-funds', message: expect.any(String) },
      seq: expect.any(Number),
    });
    expect(json.stderr).toMatch(/^pbft: transfer rejected/);
  });

  it('exits 2 for bad arguments, 3 for a missing cluster file or a bad key file, 4 for an unreachable cluster', async () => {
    const transfer = (from: string, amount: string, cluster: string): Promise<Run> =>
      pbft(['transfer', '--from', from, '--to', bob.address, '--amount', amount, '--cluster', cluster]);
    expect((await transfer(alice.file, '0', clusterFile)).code).toBe(2);
    expect((await pbft(['transfer', '--from', alice.file, '--to', 'xyz', '--amount', '1'])).code).toBe(2);
    const missing = await transfer(alice.file, '1', join(dir, 'no-such.json'));
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/^pbft: [^\n]*no-such\.json[^\n]*\n$/);
    const badKey = await transfer(clusterFile, '1', clusterFile);
    expect(badKey.code).toBe(3);
    const unreachable = await transfer(alice.file, '1', unreachableFile);
    expect(unreachable.code).toBe(4);
    expect(unreachable.stderr).toMatch(/^pbft: no replica of [^\n]+ is reachable[^\n]*\n$/);
  });

  it('loads the client alone: no replica core, storage, LevelDB or prom-client', async () => {
    const loadsFile = join(dir, 'loads.txt');
    const run = await pbft(
      ['transfer', '--from', alice.file, '--to', bob.address, '--amount', '1', '--cluster', clusterFile],
      { nodeArgs: ['--import', RECORD_LOADS], env: { PBFT_TEST_LOADS_FILE: loadsFile } },
    );
    expect(run.code).toBe(0);
    const loaded = (await readFile(loadsFile, 'utf8')).split('\n');
    expect(loaded.some((url) => url.includes('/src/client/client.ts'))).toBe(true);
    for (const server of [
      '/src/protocol/replica.ts',
      '/src/node/replica-node.ts',
      '/src/node/metrics.ts',
      '/src/storage/',
    ])
      expect(loaded.filter((url) => url.includes(server))).toEqual([]);
    for (const pkg of ['classic-level', 'prom-client'])
      expect(loaded.filter((url) => url.includes(`/node_modules/${pkg}/`))).toEqual([]);
  });
});

describe('pbft balance and status', () => {
  it('balance prints the balance, or one JSON object with how it was read', async () => {
    const human = await pbft(['balance', alice.address, '--cluster', clusterFile]);
    expect(human).toMatchObject({ code: 0, stderr: '' });
    expect(human.stdout).toMatch(/^\d+\n$/);
    const stranger = '0'.repeat(64);
    const json = await pbft(['balance', stranger, '--cluster', clusterFile, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ address: stranger, balance: 0, exists: false, via: 'query' });
    expect((await pbft(['balance', stranger, '--cluster', clusterFile])).stdout).toBe(
      '0 (no such account yet)\n',
    );
  });

  it('status reports every replica, with its metrics URL, and exits 4 when none is reachable', async () => {
    const json = await pbft(['status', '--cluster', clusterFile, '--json']);
    expect(json.code).toBe(0);
    const { replicas: reports } = JSON.parse(json.stdout) as {
      replicas: Array<{ id: number; reachable: boolean; primary: number; metricsUrl: string }>;
    };
    expect(reports.map((report) => [report.id, report.reachable, report.primary])).toEqual([
      [0, true, 0],
      [1, true, 0],
      [2, true, 0],
      [3, true, 0],
    ]);
    // The client builds the URL itself (not importing node/metrics.ts); it must be the one served.
    expect(reports.map((report) => report.metricsUrl)).toEqual(
      [0, 1, 2, 3].map((id) => metricsUrl(BASE_PORT + 4 + id)),
    );
    const human = await pbft(['status', '--cluster', clusterFile]);
    expect(human.stdout.split('\n')).toHaveLength(5);
    expect(human.stdout).toMatch(/^replica 0 {2}primary view 0 {2}executed \d+/);
    const none = await pbft(['status', '--cluster', unreachableFile]);
    expect(none.code).toBe(4);
    expect(none.stdout).toBe([0, 1, 2, 3].map((id) => `replica ${id}  unreachable\n`).join(''));
    expect(none.stderr).toMatch(/^pbft: no replica of [^\n]+ is reachable\n$/);
  });
});

describe('pbft keygen and --help', () => {
  it('keygen prints the public key and refuses to overwrite without --force', async () => {
    const out = join(dir, 'carol.json');
    const first = await pbft(['keygen', '--out', out]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    const again = await pbft(['keygen', '--out', out]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already exists/);
    expect((await pbft(['keygen', '--out', out, '--force', '--json'])).code).toBe(0);
  });

  it('--help lists the commands, exits 0 and loads no libp2p', async () => {
    const loadsFile = join(dir, 'help-loads.txt');
    const help = await pbft(['--help'], {
      nodeArgs: ['--import', RECORD_LOADS],
      env: { PBFT_TEST_LOADS_FILE: loadsFile },
    });
    expect(help.code).toBe(0);
    for (const command of ['keygen', 'testnet', 'node', 'transfer', 'balance', 'status'])
      expect(help.stdout).toContain(`  ${command} `);
    const loaded = await readFile(loadsFile, 'utf8');
    expect(loaded).not.toMatch(/\/node_modules\/libp2p\//);
    expect(loaded).not.toMatch(/\/src\/client\/client\.ts/);
  });
});

describe('pbft node --recover', () => {
  it('sets data/ aside, says so, votes on nothing until it has recovered, then serves again', async () => {
    const restarted = 3;
    await replicas[restarted]!.kill9();
    const home = join(dir, `replica-${restarted}`);
    replicas[restarted] = startReplicaProcess(dir, restarted, ['--recover']);
    const log = () => replicas[restarted]!.log();
    await expect.poll(log, { timeout: READY_TIMEOUT_MS }).toMatch(/recovering on request \(--recover\)/);
    expect(existsSync(join(home, 'data'))).toBe(true);
    // The directory set aside, and beside it its witness (the count of synced writes).
    const setAside = (await readdir(home)).filter((name) => name.startsWith('data.untrusted-'));
    expect(setAside.filter((name) => !name.endsWith('.witness'))).toHaveLength(1);
    // The idle cluster pads until the recovering replica has passed its bound.
    await expect.poll(log, { timeout: READY_TIMEOUT_MS, interval: 250 }).toMatch(/"msg":"recovered"/);
    const transfer = await pbft([
      'transfer',
      ...['--from', alice.file, '--to', bob.address, '--amount', '1', '--cluster', clusterFile],
    ]);
    expect(transfer.code).toBe(0);
  });
});
