/**
 * A replica binds `replicas[i].listen` when cluster.json has one and is dialled at `multiaddrs`:
 * a replica announced under a DNS name, or behind NAT, binds 0.0.0.0 (what `pbft cluster init`
 * writes). Without `listen` it binds its `multiaddrs`, as before.
 */

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initTestnet } from '../../../src/cli/testnet.ts';
import { ConfigFileError, listenAddressesOf, parseClusterConfig } from '../../../src/node/cluster-config.ts';
import { startReplica } from '../../../src/node/replica-node.ts';

let dir = '';
let clusterText = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-listen-'));
  // The ports are rewritten below; these only have to be valid.
  const testnet = await initTestnet({ dir, replicas: 4, basePort: 9000, accounts: 1, force: false });
  clusterText = await readFile(testnet.clusterFile, 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type ClusterJson = { replicas: Array<Record<string, unknown>> };

function withReplica0(fields: Record<string, unknown>): string {
  const json = JSON.parse(clusterText) as ClusterJson;
  Object.assign(json.replicas[0]!, fields);
  return JSON.stringify(json);
}

function errorOf(text: string): string {
  try {
    parseClusterConfig(text, '/etc/pbft/cluster.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigFileError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigFileError');
}

/** A TCP port nobody listens on just now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether something accepts TCP connections at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('replicas[].listen', () => {
  it('is optional, and when present a non-empty list of multiaddrs', () => {
    const plain = parseClusterConfig(clusterText, '/etc/pbft/cluster.json');
    expect(plain.replicas[0]!.listen).toBeUndefined();
    expect(listenAddressesOf(plain.replicas[0]!)).toEqual(plain.replicas[0]!.multiaddrs);
    const bound = parseClusterConfig(
      withReplica0({
        multiaddrs: ['/dns/replica-0.example.org/tcp/9000'],
        listen: ['/ip4/0.0.0.0/tcp/9000'],
      }),
      '/etc/pbft/cluster.json',
    );
    expect(bound.replicas[0]!.multiaddrs).toEqual(['/dns/replica-0.example.org/tcp/9000']);
    expect(listenAddressesOf(bound.replicas[0]!)).toEqual(['/ip4/0.0.0.0/tcp/9000']);
    expect(errorOf(withReplica0({ listen: [] }))).toBe(
      '/etc/pbft/cluster.json: field "replicas[0].listen" must list at least one address',
    );
    expect(errorOf(withReplica0({ listen: ['0.0.0.0:9000'] }))).toMatch(
      /field "replicas\[0\]\.listen\[0\]" must be a multiaddr/,
    );
    expect(errorOf(withReplica0({ listen: '/ip4/0.0.0.0/tcp/9000' }))).toMatch(
      /field "replicas\[0\]\.listen" must be an array/,
    );
  });

  it('is where the replica binds: not at its announced address', async () => {
    const port = await freePort();
    // Announced at 127.0.0.1, bound at 127.0.0.2 (both loopback on Linux): only the bound one answers.
    const file = join(dir, 'cluster.json');
    const json = JSON.parse(clusterText) as ClusterJson;
    for (const replica of json.replicas) replica['metricsPort'] = 0;
    Object.assign(json.replicas[0]!, {
      multiaddrs: [`/ip4/127.0.0.1/tcp/${port}`],
      listen: [`/ip4/127.0.0.2/tcp/${port}`],
    });
    await writeFile(file, JSON.stringify(json));
    const node = await startReplica({ home: join(dir, 'replica-0'), logLevel: 'error' });
    try {
      expect(await accepts('127.0.0.2', port)).toBe(true);
      expect(await accepts('127.0.0.1', port)).toBe(false);
    } finally {
      await node.stop();
    }
    // Without `listen`, the announced address is the bound one.
    delete json.replicas[0]!['listen'];
    await writeFile(file, JSON.stringify(json));
    const plain = await startReplica({ home: join(dir, 'replica-0'), logLevel: 'error' });
    try {
      expect(await accepts('127.0.0.1', port)).toBe(true);
      expect(await accepts('127.0.0.2', port)).toBe(false);
    } finally {
      await plain.stop();
    }
  });
});
