/**
 * `pbft cluster init` and `pbft testnet init` write the files of a cluster through one function
 * (src/cli/cluster-files.ts). A cluster across machines gets one folder per host with exactly what
 * that machine needs (its own key, cluster.json, genesis.json) and a client folder (cluster.json,
 * the funded account keys); no folder holds another replica's private key. Bad hosts are refused in
 * one line, exit code 2, before anything is written.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterInitOptions, initCluster } from '../../../src/cli/cluster.ts';
import { CliError } from '../../../src/cli/exit-codes.ts';
import { initTestnet } from '../../../src/cli/testnet.ts';
import { parseGenesis } from '../../../src/ledger/index.ts';
import { parseClusterConfig } from '../../../src/node/cluster-config.ts';
import { PBFT_BIN } from '../../e2e/helpers.ts';

const HOSTS = ['10.1.0.1', '10.1.0.2', 'replica-2.example.org', '[fd00::4]'];

let root = '';
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pbft-cluster-init-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function options(overrides: Partial<ClusterInitOptions> = {}): ClusterInitOptions {
  return {
    dir: join(root, `cluster-${counter++}`),
    hosts: HOSTS,
    port: 9000,
    metricsPort: 9464,
    accounts: 3,
    name: 'prod',
    force: false,
    ...overrides,
  };
}

/** Every file below `dir`, as paths relative to it, sorted. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

async function privateKeyOf(file: string): Promise<string> {
  return (JSON.parse(await readFile(file, 'utf8')) as { privateKey: string }).privateKey;
}

/** The one-line error `initCluster` refuses `overrides` with (exit code 2 unless said otherwise). */
async function refusal(overrides: Partial<ClusterInitOptions>, exitCode = 2): Promise<string> {
  const attempt = options(overrides);
  const error = await initCluster(attempt).then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CliError);
  expect((error as CliError).exitCode).toBe(exitCode);
  const message = (error as Error).message;
  expect(message.split('\n')).toHaveLength(1);
  // Refused before anything was written.
  if (overrides.dir === undefined) expect(existsSync(attempt.dir)).toBe(false);
  return message;
}

describe('pbft cluster init', () => {
  it('writes one folder per host with its own key, cluster.json and genesis.json, and a client folder', async () => {
    const result = await initCluster(options());
    expect((await readdir(result.dir)).sort()).toEqual([
      'client',
      'replica-0',
      'replica-1',
      'replica-2',
      'replica-3',
    ]);
    for (const replica of result.replicas) {
      expect(await filesBelow(replica.home)).toEqual(['cluster.json', 'genesis.json', 'key.json']);
      expect((await stat(join(replica.home, 'key.json'))).mode & 0o777).toBe(0o600);
      expect((await stat(replica.home)).mode & 0o777).toBe(0o700);
    }
    expect(await filesBelow(result.client.dir)).toEqual([
      'accounts/alice.json',
      'accounts/bob.json',
      'accounts/carol.json',
      'cluster.json',
      'genesis.json',
    ]);

    // Every copy is the same cluster, and each replica's key is the one cluster.json names for it.
    const text = await readFile(result.client.clusterFile, 'utf8');
    const genesisText = await readFile(join(result.client.dir, 'genesis.json'), 'utf8');
    for (const replica of result.replicas) {
      expect(await readFile(join(replica.home, 'cluster.json'), 'utf8')).toBe(text);
      expect(await readFile(join(replica.home, 'genesis.json'), 'utf8')).toBe(genesisText);
    }
    const cluster = parseClusterConfig(text, result.client.clusterFile);
    expect(cluster).toMatchObject({ name: 'prod', testnet: false, f: 1 });
    for (const replica of result.replicas) {
      const key = JSON.parse(await readFile(join(replica.home, 'key.json'), 'utf8')) as { publicKey: string };
      expect(cluster.replicas[replica.id]!.publicKey).toBe(key.publicKey);
      expect(cluster.replicas[replica.id]!.peerId).toBe(replica.peerId);
    }
    expect(cluster.replicas.map((replica) => replica.multiaddrs)).toEqual([
      ['/ip4/10.1.0.1/tcp/9000'],
      ['/ip4/10.1.0.2/tcp/9000'],
      ['/dns/replica-2.example.org/tcp/9000'],
      ['/ip6/fd00::4/tcp/9000'],
    ]);
    expect(cluster.replicas.map((replica) => replica.listen)).toEqual([
      ['/ip4/0.0.0.0/tcp/9000'],
      ['/ip4/0.0.0.0/tcp/9000'],
      ['/ip4/0.0.0.0/tcp/9000'],
      ['/ip6/::/tcp/9000'],
    ]);
    expect(cluster.replicas.map((replica) => replica.metricsPort)).toEqual([9464, 9464, 9464, 9464]);
    // The genesis funds exactly the client's accounts.
    const genesis = parseGenesis(genesisText, 'genesis.json');
    expect(genesis.accounts).toHaveLength(3);
    expect(result.accounts.map((account) => account.name)).toEqual(['alice', 'bob', 'carol']);
  });

  it("puts no private key in a folder but its owner's: each replica's in its own, the accounts' in the client's", async () => {
    const result = await initCluster(options());
    const owners = new Map<string, string>();
    for (const replica of result.replicas)
      owners.set(await privateKeyOf(join(replica.home, 'key.json')), replica.home);
    for (const account of result.accounts) owners.set(await privateKeyOf(account.file), result.client.dir);
    expect(owners.size).toBe(result.replicas.length + result.accounts.length);
    for (const folder of [...result.replicas.map((replica) => replica.home), result.client.dir]) {
      for (const file of await filesBelow(folder)) {
        const content = await readFile(join(folder, file), 'utf8');
        for (const [secret, owner] of owners) {
          if (owner !== folder) expect(content, `${folder}/${file}`).not.toContain(secret);
        }
      }
    }
  });

  it('takes HOST:PORT; replicas that share a host take consecutive metrics ports', async () => {
    const result = await initCluster(
      options({
        hosts: ['10.1.0.1:7000', '10.1.0.1:7001', 'Node-3.example.org.', '[fd00::1]:7003'],
        metricsPort: 7001,
      }),
    );
    expect(
      result.replicas.map(({ multiaddr, listen, metricsPort }) => ({ multiaddr, listen, metricsPort })),
    ).toEqual([
      { multiaddr: '/ip4/10.1.0.1/tcp/7000', listen: '/ip4/0.0.0.0/tcp/7000', metricsPort: 7002 },
      { multiaddr: '/ip4/10.1.0.1/tcp/7001', listen: '/ip4/0.0.0.0/tcp/7001', metricsPort: 7003 },
      {
        multiaddr: '/dns/Node-3.example.org/tcp/9000',
        listen: '/ip4/0.0.0.0/tcp/9000',
        metricsPort: 7001,
      },
      { multiaddr: '/ip6/fd00::1/tcp/7003', listen: '/ip6/::/tcp/7003', metricsPort: 7001 },
    ]);
    // A metrics port never takes a replica's port on the same host.
    const crowded = await initCluster(
      options({ hosts: ['10.1.0.1:9000', '10.1.0.1:9464', '10.1.0.3', '10.1.0.4'], metricsPort: 9464 }),
    );
    expect(crowded.replicas.map((replica) => replica.metricsPort)).toEqual([9465, 9466, 9464, 9464]);
    const none = await initCluster(options({ metricsPort: 0 }));
    const cluster = parseClusterConfig(
      await readFile(none.client.clusterFile, 'utf8'),
      none.client.clusterFile,
    );
    expect(cluster.replicas.every((replica) => replica.metricsPort === 0)).toBe(true);
  });

  it('refuses a number of hosts that is not 3f+1, bad hosts and a host:port given twice, writing nothing', async () => {
    expect(await refusal({ hosts: [] })).toMatch(/--host/);
    expect(await refusal({ hosts: HOSTS.slice(0, 3) })).toMatch(/3f\+1.*got 3/);
    expect(await refusal({ hosts: [...HOSTS, '10.1.0.9'] })).toMatch(/3f\+1.*got 5/);
    expect(await refusal({ hosts: Array.from({ length: 22 }, (_, i) => `10.2.0.${i + 1}`) })).toMatch(
      /22: watermarkWindow/,
    );
    for (const bad of ['10.1.0.256', 'under_score.example.org', 'a..b', '-dash.example.org', '']) {
      expect(await refusal({ hosts: [bad, ...HOSTS.slice(1)] })).toMatch(/not an IP address or a DNS name/);
    }
    expect(await refusal({ hosts: ['[10.1.0.1]', ...HOSTS.slice(1)] })).toMatch(/not an IPv6 address/);
    expect(await refusal({ hosts: ['10.1.0.1:0', ...HOSTS.slice(1)] })).toMatch(/port must be/);
    expect(await refusal({ hosts: ['10.1.0.1:65536', ...HOSTS.slice(1)] })).toMatch(/port must be/);
    expect(await refusal({ hosts: ['10.1.0.1:x', ...HOSTS.slice(1)] })).toMatch(/port must be/);
    expect(await refusal({ hosts: ['10.1.0.2', ...HOSTS.slice(1)] })).toBe(
      '10.1.0.2:9000 is given twice (replica 0 and replica 1)',
    );
    expect(await refusal({ hosts: ['A.example.org', 'a.example.org.', '10.1.0.3', '10.1.0.4'] })).toMatch(
      /given twice/,
    );
    expect(await refusal({ hosts: ['[fd00:0::4]:9000', ...HOSTS.slice(1)] })).toMatch(/given twice/);
    expect(await refusal({ hosts: ['fd00::4]', ...HOSTS.slice(1)] })).toMatch(/^--host fd00::4\]: /);
    expect(await refusal({ port: 65_536 })).toMatch(/--port must be/);
    expect(await refusal({ metricsPort: -1 })).toMatch(/--metrics-port must be/);
    expect(await refusal({ accounts: 0 })).toMatch(/--accounts/);
  });

  it('refuses a folder that is not empty, and replaces an earlier cluster only with --force', async () => {
    const first = await initCluster(options());
    expect(await refusal({ dir: first.dir }, 3)).toMatch(/already exists \(use --force/);
    const replaced = await initCluster(options({ dir: first.dir, force: true }));
    expect(replaced.replicas[0]!.peerId).not.toBe(first.replicas[0]!.peerId);
    const occupied = join(root, 'occupied');
    await mkdir(occupied);
    await writeFile(join(occupied, 'notes.txt'), 'mine\n');
    expect(await refusal({ dir: occupied, force: true }, 3)).toMatch(/not empty and holds no cluster/);
    expect(await readFile(join(occupied, 'notes.txt'), 'utf8')).toBe('mine\n');
  });

  it('as a command: prints where each folder goes, --json one object, bad input one line with exit code 2', async () => {
    const dir = join(root, 'cli');
    const human = await pbft([
      'cluster',
      'init',
      '--dir',
      dir,
      '--host',
      '10.1.0.1,10.1.0.2',
      '--host',
      '10.1.0.3',
      '--host',
      '10.1.0.4',
    ]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('replica 3  /ip4/10.1.0.4/tcp/9000');
    expect(human.stdout).toContain('pbft node --home');
    const json = await pbft([
      'cluster',
      'init',
      '--dir',
      dir,
      '--force',
      '--json',
      '--port',
      '7100',
      '--host',
      HOSTS.join(','),
    ]);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as {
      replicas: Array<{ multiaddr: string }>;
      client: { clusterFile: string };
    };
    expect(result.replicas.map((replica) => replica.multiaddr)[2]).toBe(
      '/dns/replica-2.example.org/tcp/7100',
    );
    expect(result.client.clusterFile).toBe(join(dir, 'client', 'cluster.json'));
    for (const args of [
      ['--port', '9000'],
      ['--host', '10.1.0.1,10.1.0.2,10.1.0.3'],
      ['--host', '10.1.0.1,10.1.0.1,10.1.0.3,10.1.0.4'],
      ['--host', 'not a host,10.1.0.2,10.1.0.3,10.1.0.4'],
      ['--host', HOSTS.join(','), '--port', '70000'],
    ]) {
      const bad = await pbft(['cluster', 'init', '--dir', join(root, 'cli-bad'), ...args]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr.trim().split('\n')[0]).toMatch(/^(pbft: |error: )/);
    }
    expect(existsSync(join(root, 'cli-bad'))).toBe(false);
  });
});

describe('pbft testnet init (the same writer)', () => {
  it('keeps its layout: one cluster.json beside the replica homes, the accounts in accounts/', async () => {
    const dir = join(root, 'testnet');
    const result = await initTestnet({ dir, replicas: 4, basePort: 9000, accounts: 2, force: false });
    expect(await filesBelow(dir)).toEqual([
      'accounts/alice.json',
      'accounts/bob.json',
      'cluster.json',
      'genesis.json',
      'replica-0/key.json',
      'replica-1/key.json',
      'replica-2/key.json',
      'replica-3/key.json',
    ]);
    const cluster = parseClusterConfig(await readFile(result.clusterFile, 'utf8'), result.clusterFile);
    expect(cluster.testnet).toBe(true);
    expect(
      cluster.replicas.map((replica) => [replica.multiaddrs, replica.listen, replica.metricsPort]),
    ).toEqual([
      [['/ip4/127.0.0.1/tcp/9000'], undefined, 9004],
      [['/ip4/127.0.0.1/tcp/9001'], undefined, 9005],
      [['/ip4/127.0.0.1/tcp/9002'], undefined, 9006],
      [['/ip4/127.0.0.1/tcp/9003'], undefined, 9007],
    ]);
  });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function pbft(args: readonly string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PBFT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
