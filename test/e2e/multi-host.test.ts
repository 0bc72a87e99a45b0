/**
 * A cluster across machines, with network namespaces as the machines: `pbft cluster init` with one
 * host address per replica, then each replica started in its own namespace at its own address from
 * its own folder (`ip netns exec NS pbft node --home DIR/replica-I`), and a client on the host that
 * has only DIR/client. Transfers commit, and every replica holds the right balances.
 *
 * The namespaces come from scripts/lib/netns.ts (the chaos runner's): a bridge in the root
 * namespace, one veth pair per replica. That needs root and iproute2; without them the test says
 * why and is skipped. afterAll stops the replicas and removes the namespaces, also after a failure.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeNetns, ReplicaNetwork } from '../../scripts/lib/netns.ts';
import { spawnInOwnGroup } from '../../src/cli/process-groups.ts';
import { PbftClient } from '../../src/index.ts';
import { logEntries, PBFT_BIN } from './helpers.ts';

const REPLICAS = 4;
const PORT = 9000;
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const BALANCE = 1_000_000;

const skipReason = probeNetns().missing.namespaces;
if (skipReason !== undefined) console.warn(`test/e2e/multi-host.test.ts skipped: ${skipReason}`);

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

interface Replica {
  child: ChildProcess;
  output: string;
}

let network: ReplicaNetwork | null = null;
let dir = '';
const replicas: Replica[] = [];

function logsOf(): string {
  return replicas.map((replica, id) => `--- replica ${id}\n${replica.output.slice(-2_000)}`).join('\n');
}

async function stopReplicas(): Promise<void> {
  await Promise.all(
    replicas.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(killer);
    }),
  );
}

describe.skipIf(skipReason !== undefined)('a cluster across machines (one network namespace each)', () => {
  beforeAll(async () => {
    network = new ReplicaNetwork(REPLICAS);
    network.setup();
    dir = await mkdtemp(join(tmpdir(), 'pbft-multi-host-'));
  });

  afterAll(async () => {
    await stopReplicas();
    network?.teardown();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('pbft cluster init, a replica per namespace at its own address, transfers from a client elsewhere', async () => {
    const net = network!;
    const hosts = Array.from({ length: REPLICAS }, (_, id) => net.hostOf(id));
    const out = join(dir, 'cluster');
    const init = await pbft([
      'cluster',
      'init',
      '--dir',
      out,
      '--host',
      hosts.join(','),
      '--port',
      String(PORT),
      '--json',
    ]);
    expect(init.code, init.stderr).toBe(0);
    // No cluster.json beside the replica folders: each replica reads the copy in its own folder.
    expect(existsSync(join(out, 'cluster.json'))).toBe(false);

    for (let id = 0; id < REPLICAS; id++) {
      const [launcher, ...launcherArgs] = net.launcherOf(id);
      const child = spawnInOwnGroup(
        launcher!,
        [...launcherArgs, process.execPath, PBFT_BIN, 'node', '--home', join(out, `replica-${id}`)],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const replica: Replica = { child, output: '' };
      child.stdout?.on('data', (chunk: Buffer) => {
        replica.output += chunk.toString();
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        replica.output += chunk.toString();
      });
      replicas.push(replica);
    }

    // The client has the client folder only, and reaches the replicas over the bridge.
    const clusterFile = join(out, 'client', 'cluster.json');
    const accounts = join(out, 'client', 'accounts');
    const address = async (name: string): Promise<string> =>
      (JSON.parse(await readFile(join(accounts, `${name}.json`), 'utf8')) as { address: string }).address;
    const [bob, carol] = [await address('bob'), await address('carol')];

    // Ready once every replica answers and is linked to the three others.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      const status = await pbft(['status', '--cluster', clusterFile, '--json']);
      const reports =
        status.code === 0
          ? (JSON.parse(status.stdout) as { replicas: Array<{ peersConnected?: number }> }).replicas
          : [];
      if (reports.length === REPLICAS && reports.every((report) => report.peersConnected === REPLICAS - 1))
        break;
      const exited = replicas.findIndex(({ child }) => child.exitCode !== null || child.signalCode !== null);
      if (exited >= 0) throw new Error(`replica ${exited} exited while starting\n${logsOf()}`);
      if (Date.now() > deadline)
        throw new Error(`the cluster did not come up: ${status.stdout}${status.stderr}\n${logsOf()}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }

    // Each replica bound every interface of its namespace and announced its host's address.
    for (const [id, replica] of replicas.entries()) {
      const started = logEntries(replica.output, 'replica started')[0];
      expect(started?.['listen'], logsOf()).toContain(`/ip4/${hosts[id]}/tcp/${PORT}`);
      expect(started?.['listen']).toContain(`/ip4/127.0.0.1/tcp/${PORT}`);
      expect(started?.['announce']).toEqual([`/ip4/${hosts[id]}/tcp/${PORT}`]);
    }

    const transfers: Array<[string, string, number]> = [
      ['alice', bob, 100],
      ['bob', carol, 30],
      ['alice', carol, 7],
    ];
    for (const [from, to, amount] of transfers) {
      const run = await pbft([
        'transfer',
        '--cluster',
        clusterFile,
        '--from',
        join(accounts, `${from}.json`),
        '--to',
        to,
        '--amount',
        String(amount),
        '--json',
      ]);
      expect(run.code, `${run.stderr}\n${logsOf()}`).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ status: 'ok' });
    }
    const expected = new Map([
      [await address('alice'), BALANCE - 107],
      [bob, BALANCE + 70],
      [carol, BALANCE + 37],
      [await address('dave'), BALANCE],
    ]);
    const balance = await pbft(['balance', carol, '--cluster', clusterFile, '--json']);
    expect(JSON.parse(balance.stdout)).toMatchObject({ balance: BALANCE + 37 });

    // Every replica, not only the f+1 that answered the transfers, holds the same balances.
    const observer = await PbftClient.connect({ cluster: clusterFile });
    try {
      const held = async (): Promise<Array<[number, Array<[string, number]>]>> => {
        const byReplica = new Map<number, Array<[string, number]>>();
        for (const account of expected.keys()) {
          for (const [replica, answer] of await observer.balanceByReplica(account, 5_000)) {
            byReplica.set(replica, [...(byReplica.get(replica) ?? []), [account, answer.balance]]);
          }
        }
        return [...byReplica].sort(([a], [b]) => a - b);
      };
      const wanted = hosts.map((_, id): [number, Array<[string, number]>] => [id, [...expected]]);
      // The last replica to execute may answer a moment after the f+1 that acknowledged.
      await expect.poll(held, { timeout: READY_TIMEOUT_MS, interval: 200 }).toEqual(wanted);
    } finally {
      await observer.close();
    }
  });
});
