/**
 * cluster.json is parsed strictly: a malformed file gets one line naming the file and the field.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateSeed, publicKeyFromSeed } from '../../../src/crypto/index.ts';
import { parseGenesis } from '../../../src/ledger/index.ts';
import {
  ConfigFileError,
  DEFAULT_CLUSTER_PROTOCOL,
  DEFAULT_RUNTIME_SETTINGS,
  parseClusterConfig,
} from '../../../src/node/cluster-config.ts';
import { peerIdFromSeed } from '../../../src/transport/index.ts';
import { toHex } from '../../../src/util/bytes.ts';

async function validCluster(): Promise<Record<string, unknown>> {
  const replicas = [];
  for (let id = 0; id < 4; id++) {
    const seed = generateSeed();
    replicas.push({
      id,
      publicKey: toHex(publicKeyFromSeed(seed)),
      peerId: await peerIdFromSeed(seed),
      multiaddrs: [`/ip4/127.0.0.1/tcp/${9000 + id}`],
    });
  }
  return { name: 'test', testnet: true, f: 1, replicas, genesis: 'genesis.json' };
}

function errorOf(text: string): string {
  try {
    parseClusterConfig(text, '/etc/pbft/cluster.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigFileError);
    const message = (error as Error).message;
    expect(message.split('\n')).toHaveLength(1);
    return message;
  }
  throw new Error('expected a ConfigFileError');
}

describe('cluster.json', () => {
  it('the example in configs/ parses and carries the defaults', async () => {
    const path = join(import.meta.dirname, '..', '..', '..', 'configs', 'cluster.example.json');
    const config = parseClusterConfig(await readFile(path, 'utf8'), path);
    expect(config.replicas).toHaveLength(3 * config.f + 1);
    const { replicaCount, ...protocol } = config.protocol;
    expect(replicaCount).toBe(config.replicas.length);
    expect(protocol).toEqual(DEFAULT_CLUSTER_PROTOCOL);
    expect(config.runtime).toEqual(DEFAULT_RUNTIME_SETTINGS);
    const genesisText = await readFile(config.genesisPath, 'utf8');
    expect(parseGenesis(genesisText, 'genesis.example.json').accounts.length).toBeGreaterThan(0);
  });

  it('parses a valid file with protocol defaults filled in', async () => {
    const config = parseClusterConfig(JSON.stringify(await validCluster()), '/etc/pbft/cluster.json');
    expect(config.runtime.verifyWorkers).toBe(0);
    const withWorkers = parseClusterConfig(
      JSON.stringify({ ...(await validCluster()), runtime: { verifyWorkers: 4 } }),
      '/etc/pbft/cluster.json',
    );
    expect(withWorkers.runtime.verifyWorkers).toBe(4);
    expect(config.replicas).toHaveLength(4);
    expect(config.protocol.replicaCount).toBe(4);
    expect(config.genesisPath).toBe('/etc/pbft/genesis.json');
  });

  it.each([
    ['not JSON', () => '{"name": ', /^\/etc\/pbft\/cluster\.json: /],
    [
      'a missing field',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, f: undefined }),
      /field "f" is missing/,
    ],
    [
      'an unknown field',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, colour: 'red' }),
      /field "colour" is not a known field/,
    ],
    [
      'a wrong type',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, testnet: 'yes' }),
      /field "testnet" must be true or false/,
    ],
    [
      'the wrong number of replicas',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, f: 2 }),
      /field "replicas" must list 3f\+1 = 7/,
    ],
    [
      'a peer id that is not the replica key',
      (c: Record<string, unknown>) => {
        const replicas = c['replicas'] as Array<Record<string, unknown>>;
        return JSON.stringify({
          ...c,
          replicas: [{ ...replicas[0], peerId: replicas[1]!['peerId'] }, ...replicas.slice(1)],
        });
      },
      /field "replicas\[0\]\.peerId" must be the ed25519 peer id of publicKey/,
    ],
    [
      'uppercase hex',
      (c: Record<string, unknown>) => {
        const replicas = c['replicas'] as Array<Record<string, unknown>>;
        const upper = { ...replicas[2], publicKey: String(replicas[2]!['publicKey']).toUpperCase() };
        return JSON.stringify({ ...c, replicas: [...replicas.slice(0, 2), upper, replicas[3]] });
      },
      /field "replicas\[2\]\.publicKey" must be 64 lowercase hex characters/,
    ],
    [
      'a bad protocol setting',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, protocol: { batchSizeMax: 0 } }),
      /field "protocol\.batchSizeMax" must be between 1/,
    ],
    [
      'more verification workers than any machine has cores',
      (c: Record<string, unknown>) => JSON.stringify({ ...c, runtime: { verifyWorkers: 65 } }),
      /field "runtime\.verifyWorkers" must be between 0 and 64/,
    ],
    [
      'duplicate keys',
      (c: Record<string, unknown>) => JSON.stringify(c).replace('"name":"test"', '"name":"a","name":"b"'),
      /duplicate/i,
    ],
  ])('refuses %s with one line naming the file and the field', async (_what, mutate, expected) => {
    const message = errorOf((mutate as (c: Record<string, unknown>) => string)(await validCluster()));
    expect(message).toMatch(/^\/etc\/pbft\/cluster\.json: /);
    expect(message).toMatch(expected);
  });
});
