/**
 * cluster.json: the public description of a cluster (replica ids, keys, peer ids, addresses, f,
 * protocol settings). Parsed strictly: unknown fields, duplicates, wrong types and inconsistent
 * values are refused with one line naming the file and the field.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { peerIdFromString } from '@libp2p/peer-id';
import {
  DEFAULT_PROTOCOL_CONFIG,
  PROTOCOL_SETTINGS,
  type ProtocolConfig,
  validateProtocolConfig,
} from '../protocol/config.ts';
import { bytesEqual, fromHex } from '../util/bytes.ts';
import { JsonNumber, type JsonObject, type JsonValue, parseStrictJson } from '../util/strict-json.ts';

/** Config files are small; anything larger is a mistake. */
export const CLUSTER_FILE_SIZE_MAX_BYTES = 1024 * 1024;

export interface ClusterReplica {
  id: number;
  /** ed25519 public key, 64 lowercase hex characters. */
  publicKey: string;
  peerId: string;
  /** Where the other replicas and the clients dial this replica (its announced addresses). */
  multiaddrs: string[];
  /**
   * Where the replica binds, when that is not its announced address: `/ip4/0.0.0.0/tcp/9000` for a
   * replica announced under a DNS name, or behind NAT where its public IP is not on any interface.
   * Absent: it binds its `multiaddrs`.
   */
  listen?: string[];
  /** Loopback port serving Prometheus metrics (0 = none). */
  metricsPort: number;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RuntimeSettings {
  /** Milliseconds per protocol tick. */
  tickMs: number;
  /** Replica log level (a replica's --log-level overrides it). */
  logLevel: LogLevel;
  /** Per client connection. */
  clientFramesPerSecondMax: number;
  /**
   * Worker threads that verify signatures off the event loop; 0 verifies on it. Worth it only where
   * a replica has cores to itself: on a machine shared by all replicas every core is already busy.
   */
  verifyWorkers: number;
}

export interface ClusterConfig {
  name: string;
  /** Only a testnet may run replicas with --byzantine. */
  testnet: boolean;
  f: number;
  replicas: ClusterReplica[];
  protocol: ProtocolConfig;
  runtime: RuntimeSettings;
  /** Absolute path of the genesis file. */
  genesisPath: string;
  /** Absolute path of cluster.json itself. */
  path: string;
}

export const DEFAULT_RUNTIME_SETTINGS: RuntimeSettings = {
  tickMs: 10,
  logLevel: 'info',
  clientFramesPerSecondMax: 2_000,
  verifyWorkers: 0,
};

/** Bound on runtime.verifyWorkers: more threads than any machine's cores only add switching. */
export const VERIFY_WORKERS_MAX = 64;

/** Production-leaning defaults for real clusters: ticks of 10 ms. */
export const DEFAULT_CLUSTER_PROTOCOL: Omit<ProtocolConfig, 'replicaCount'> = {
  ...DEFAULT_PROTOCOL_CONFIG,
  checkpointInterval: 64,
  watermarkWindow: 256,
  batchSizeMax: 256,
  pipelineDepthMax: 32,
  viewChangeTimeoutTicks: 200,
  viewChangeTimeoutMaxTicks: 3_200,
  retransmitIntervalTicks: 100,
};

export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

class Reader {
  readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  fail(field: string, problem: string): never {
    throw new ConfigFileError(`${this.file}: ${field === '' ? '' : `field "${field}" `}${problem}`);
  }
  object(
    value: JsonValue | undefined,
    field: string,
    required: string[],
    optional: string[] = [],
  ): JsonObject {
    if (
      value === null ||
      value === undefined ||
      typeof value !== 'object' ||
      Array.isArray(value) ||
      value instanceof JsonNumber
    ) {
      this.fail(field, 'must be an object');
    }
    const object = value as JsonObject;
    for (const key of Object.keys(object)) {
      if (!required.includes(key) && !optional.includes(key))
        this.fail(field === '' ? key : `${field}.${key}`, 'is not a known field');
    }
    for (const key of required)
      if (!Object.hasOwn(object, key)) this.fail(field === '' ? key : `${field}.${key}`, 'is missing');
    return object;
  }
  integer(value: JsonValue | undefined, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (!(value instanceof JsonNumber) || !/^-?\d+$/.test(value.text) || !Number.isSafeInteger(value.value)) {
      this.fail(field, 'must be an integer');
    }
    if (value.value < min || value.value > max) this.fail(field, `must be between ${min} and ${max}`);
    return value.value;
  }
  string(value: JsonValue | undefined, field: string): string {
    if (typeof value !== 'string' || value.length === 0) this.fail(field, 'must be a non-empty string');
    return value;
  }
  boolean(value: JsonValue | undefined, field: string): boolean {
    if (typeof value !== 'boolean') this.fail(field, 'must be true or false');
    return value;
  }
  array(value: JsonValue | undefined, field: string): JsonValue[] {
    if (!Array.isArray(value)) this.fail(field, 'must be an array');
    return value;
  }
}

function logLevelOf(reader: Reader, value: JsonValue): LogLevel {
  const level = reader.string(value, 'runtime.logLevel');
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    reader.fail('runtime.logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  return level as LogLevel;
}

export function parseClusterConfig(text: string, path: string): ClusterConfig {
  const file = path;
  const reader = new Reader(file);
  let json: JsonValue;
  try {
    json = parseStrictJson(text);
  } catch (error) {
    throw new ConfigFileError(`${file}: ${(error as Error).message}`);
  }
  const top = reader.object(
    json,
    '',
    ['name', 'testnet', 'f', 'replicas', 'genesis'],
    ['protocol', 'runtime'],
  );
  const f = reader.integer(top['f'], 'f', 1, 33);
  const replicasJson = reader.array(top['replicas'], 'replicas');
  if (replicasJson.length !== 3 * f + 1)
    reader.fail(
      'replicas',
      `must list 3f+1 = ${3 * f + 1} replicas for f = ${f}, found ${replicasJson.length}`,
    );
  const replicas = replicasJson.map((value, index): ClusterReplica => {
    const field = `replicas[${index}]`;
    const replica = reader.object(
      value,
      field,
      ['id', 'publicKey', 'peerId', 'multiaddrs'],
      ['listen', 'metricsPort'],
    );
    const id = reader.integer(replica['id'], `${field}.id`, 0, replicasJson.length - 1);
    if (id !== index) reader.fail(`${field}.id`, `must be ${index}: replicas are listed in id order 0 … n-1`);
    const publicKey = reader.string(replica['publicKey'], `${field}.publicKey`);
    if (!/^[0-9a-f]{64}$/.test(publicKey))
      reader.fail(`${field}.publicKey`, 'must be 64 lowercase hex characters');
    const peerId = reader.string(replica['peerId'], `${field}.peerId`);
    let embedded: Uint8Array | undefined;
    try {
      embedded = peerIdFromString(peerId).publicKey?.raw;
    } catch {
      reader.fail(`${field}.peerId`, 'is not a valid libp2p peer id');
    }
    if (embedded === undefined || !bytesEqual(embedded, fromHex(publicKey))) {
      reader.fail(`${field}.peerId`, 'must be the ed25519 peer id of publicKey');
    }
    const addresses = (name: 'multiaddrs' | 'listen'): string[] => {
      const list = reader.array(replica[name], `${field}.${name}`).map((item, i) => {
        const address = reader.string(item, `${field}.${name}[${i}]`);
        if (!address.startsWith('/'))
          reader.fail(`${field}.${name}[${i}]`, 'must be a multiaddr such as /ip4/127.0.0.1/tcp/9000');
        return address;
      });
      if (list.length === 0) reader.fail(`${field}.${name}`, 'must list at least one address');
      return list;
    };
    const multiaddrs = addresses('multiaddrs');
    const listen = replica['listen'] === undefined ? undefined : addresses('listen');
    const metricsPort =
      replica['metricsPort'] === undefined
        ? 0
        : reader.integer(replica['metricsPort'], `${field}.metricsPort`, 0, 65_535);
    return { id, publicKey, peerId, multiaddrs, ...(listen === undefined ? {} : { listen }), metricsPort };
  });
  const keys = new Set(replicas.map((replica) => replica.publicKey));
  if (keys.size !== replicas.length) reader.fail('replicas', 'must have distinct public keys');

  const protocolJson =
    top['protocol'] === undefined
      ? {}
      : reader.object(top['protocol'], 'protocol', [], [...PROTOCOL_SETTINGS]);
  const protocol: ProtocolConfig = { replicaCount: replicas.length, ...DEFAULT_CLUSTER_PROTOCOL };
  for (const key of PROTOCOL_SETTINGS) {
    if (protocolJson[key] !== undefined)
      protocol[key] = reader.integer(protocolJson[key], `protocol.${key}`, 1);
  }
  try {
    validateProtocolConfig(protocol);
  } catch (error) {
    reader.fail('protocol', (error as Error).message);
  }
  const runtimeJson =
    top['runtime'] === undefined
      ? {}
      : reader.object(
          top['runtime'],
          'runtime',
          [],
          ['tickMs', 'logLevel', 'clientFramesPerSecondMax', 'verifyWorkers'],
        );
  const runtime: RuntimeSettings = {
    tickMs:
      runtimeJson['tickMs'] === undefined
        ? DEFAULT_RUNTIME_SETTINGS.tickMs
        : reader.integer(runtimeJson['tickMs'], 'runtime.tickMs', 1, 10_000),
    logLevel:
      runtimeJson['logLevel'] === undefined
        ? DEFAULT_RUNTIME_SETTINGS.logLevel
        : logLevelOf(reader, runtimeJson['logLevel']),
    clientFramesPerSecondMax:
      runtimeJson['clientFramesPerSecondMax'] === undefined
        ? DEFAULT_RUNTIME_SETTINGS.clientFramesPerSecondMax
        : reader.integer(runtimeJson['clientFramesPerSecondMax'], 'runtime.clientFramesPerSecondMax', 1),
    verifyWorkers:
      runtimeJson['verifyWorkers'] === undefined
        ? DEFAULT_RUNTIME_SETTINGS.verifyWorkers
        : reader.integer(runtimeJson['verifyWorkers'], 'runtime.verifyWorkers', 0, VERIFY_WORKERS_MAX),
  };
  return {
    name: reader.string(top['name'], 'name'),
    testnet: reader.boolean(top['testnet'], 'testnet'),
    f,
    replicas,
    protocol,
    runtime,
    genesisPath: resolve(dirname(path), reader.string(top['genesis'], 'genesis')),
    path: resolve(path),
  };
}

/** The addresses replica `replica` binds: its `listen` addresses, else the ones it is dialled at. */
export function listenAddressesOf(replica: ClusterReplica): string[] {
  return replica.listen ?? replica.multiaddrs;
}

export async function readClusterConfig(path: string): Promise<ClusterConfig> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CLUSTER_FILE_SIZE_MAX_BYTES)
      throw new ConfigFileError(`${path}: larger than ${CLUSTER_FILE_SIZE_MAX_BYTES} bytes`);
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof ConfigFileError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigFileError(
      code === 'ENOENT'
        ? `${path}: no such file (run \`pbft testnet init\` first?)`
        : `${path}: ${(error as Error).message}`,
    );
  }
  return parseClusterConfig(text, path);
}

/** The JSON written by `testnet init` and `cluster init` (paths relative to the cluster file's folder). */
export function formatClusterConfig(
  config: Omit<ClusterConfig, 'genesisPath' | 'path'> & { genesis: string },
): string {
  const { replicaCount: _replicaCount, ...protocol } = config.protocol;
  return `${JSON.stringify(
    {
      name: config.name,
      testnet: config.testnet,
      f: config.f,
      replicas: config.replicas,
      genesis: config.genesis,
      protocol,
      runtime: config.runtime,
    },
    null,
    2,
  )}\n`;
}
