/**
 * `pbft cluster init`: the files of a cluster whose replicas run on machines of their own. One
 * folder per replica (its own key, and cluster.json and genesis.json), to be copied to its machine,
 * and one for clients (cluster.json and the funded account keys). A replica's private key is in its
 * own folder only.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { isIP, isIPv6 } from 'node:net';
import { join, resolve } from 'node:path';
import {
  checkAccountCount,
  checkReplicaCount,
  type WrittenAccount,
  writeClusterFiles,
} from './cluster-files.ts';
import { CliError, EXIT_CONFIG, EXIT_USAGE } from './exit-codes.ts';

export const CLUSTER_PORT_DEFAULT = 9000;
/** Prometheus metrics, on each machine's 127.0.0.1; replicas that share a machine take the next ones. */
export const CLUSTER_METRICS_PORT_DEFAULT = 9464;
/** The folder clients use; the replicas' are replica-0 … replica-(n-1). */
export const CLIENT_FOLDER = 'client';

export interface ClusterInitOptions {
  /** The folder that receives one folder per replica and the client folder. */
  dir: string;
  /** One per replica, in id order: an IPv4 or IPv6 address or a DNS name, each optionally with :PORT. */
  hosts: string[];
  /** The port of hosts given without one. */
  port: number;
  /** 0: no metrics. */
  metricsPort: number;
  accounts: number;
  name: string;
  force: boolean;
}

export interface ClusterInitReplica {
  id: number;
  host: string;
  port: number;
  /** Copy this folder to the replica's machine. */
  home: string;
  peerId: string;
  /** Where the others dial it. */
  multiaddr: string;
  /** Where it binds on its machine. */
  listen: string;
  metricsPort: number;
}

export interface ClusterInitResult {
  dir: string;
  replicas: ClusterInitReplica[];
  /** cluster.json, genesis.json and accounts/ for `pbft transfer` / `balance` / `status`. */
  client: { dir: string; clusterFile: string };
  accounts: WrittenAccount[];
}

interface HostPort {
  /** As given (an IPv6 address without its brackets, a DNS name without a final dot). */
  host: string;
  /** The same host spelt one way: lower case, an IPv6 address in its shortest form. */
  key: string;
  kind: 'ip4' | 'ip6' | 'dns';
  port: number;
}

/** RFC 1123 labels; the last may not be all digits, so a mistyped IPv4 address is no DNS name. */
function isDnsName(name: string): boolean {
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  if (name.length > 253 || labels.some((label) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(label)))
    return false;
  return !/^\d+$/.test(labels.at(-1)!);
}

function portOf(text: string, where: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65_535)
    throw new CliError(EXIT_USAGE, `${where}: the port must be an integer between 1 and 65535`);
  return Number(text);
}

/** HOST, HOST:PORT, an IPv6 address, or [IPv6]:PORT. */
export function parseHost(value: string, defaultPort: number): HostPort {
  const where = `--host ${value}`;
  let host = value;
  let port = defaultPort;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
  if (bracketed !== null) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = portOf(bracketed[2], where);
    if (!isIPv6(host)) throw new CliError(EXIT_USAGE, `${where}: [${host}] is not an IPv6 address`);
  } else if (!isIPv6(value) && value.includes(':')) {
    const colon = value.lastIndexOf(':');
    host = value.slice(0, colon);
    port = portOf(value.slice(colon + 1), where);
  }
  const ipVersion = isIP(host);
  if (ipVersion === 0 && !isDnsName(host)) {
    throw new CliError(EXIT_USAGE, `${where}: not an IP address or a DNS name`);
  }
  if (ipVersion === 6) {
    return { host, key: new URL(`http://[${host}]`).hostname, kind: 'ip6', port };
  }
  // libp2p does not dial a fully qualified name with its final dot.
  const name = host.replace(/\.$/, '');
  return { host: name, key: name.toLowerCase(), kind: ipVersion === 4 ? 'ip4' : 'dns', port };
}

function announcedAddress(target: HostPort): string {
  const protocol = target.kind === 'dns' ? 'dns' : target.kind;
  return `/${protocol}/${target.host}/tcp/${target.port}`;
}

/** Every interface of the replica's machine: its announced address may be a name, or behind NAT. */
function listenAddress(target: HostPort): string {
  return target.kind === 'ip6' ? `/ip6/::/tcp/${target.port}` : `/ip4/0.0.0.0/tcp/${target.port}`;
}

/**
 * The replicas' ports, checked: no two replicas at one host:port, and on a machine that runs more
 * than one replica, metrics ports after the first take the next free numbers.
 */
function planPorts(targets: HostPort[], metricsPort: number): number[] {
  const taken = new Map<string, string>();
  const take = (target: HostPort, port: number, what: string): void => {
    const key = `${target.key}:${port}`;
    const holder = taken.get(key);
    if (holder !== undefined)
      throw new CliError(EXIT_USAGE, `${target.host}:${port} is given twice (${holder} and ${what})`);
    taken.set(key, what);
  };
  for (const [id, target] of targets.entries()) take(target, target.port, `replica ${id}`);
  return targets.map((target, id) => {
    if (metricsPort === 0) return 0;
    let port = metricsPort;
    while (taken.has(`${target.key}:${port}`)) port++;
    if (port > 65_535)
      throw new CliError(EXIT_USAGE, `--metrics-port ${metricsPort}: no free port left on ${target.host}`);
    take(target, port, `replica ${id}'s metrics`);
    return port;
  });
}

export async function initCluster(options: ClusterInitOptions): Promise<ClusterInitResult> {
  if (options.hosts.length === 0) throw new CliError(EXIT_USAGE, 'give every replica its host: --host HOST');
  for (const [flag, value, min] of [
    ['--port', options.port, 1],
    ['--metrics-port', options.metricsPort, 0],
  ] as const) {
    if (!Number.isInteger(value) || value < min || value > 65_535)
      throw new CliError(EXIT_USAGE, `${flag} must be an integer between ${min} and 65535`);
  }
  const targets = options.hosts.map((host) => parseHost(host, options.port));
  checkReplicaCount(targets.length, 'the number of hosts');
  checkAccountCount(options.accounts);
  const metricsPorts = planPorts(targets, options.metricsPort);

  const dir = resolve(options.dir);
  const clientDir = join(dir, CLIENT_FOLDER);
  const clusterFile = join(clientDir, 'cluster.json');
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw new CliError(EXIT_CONFIG, `${dir}: ${error.message}`);
  });
  if (entries.length > 0) {
    if (!existsSync(clusterFile))
      throw new CliError(EXIT_CONFIG, `${dir} is not empty and holds no cluster (pick a new folder)`);
    if (!options.force)
      throw new CliError(EXIT_CONFIG, `${clusterFile} already exists (use --force to replace the cluster)`);
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const homes = targets.map((_, id) => join(dir, `replica-${id}`));
  const written = await writeClusterFiles({
    name: options.name,
    testnet: false,
    replicas: targets.map((target, id) => ({
      home: homes[id]!,
      multiaddr: announcedAddress(target),
      listen: listenAddress(target),
      metricsPort: metricsPorts[id]!,
    })),
    accounts: options.accounts,
    accountsDir: join(clientDir, 'accounts'),
    configDirs: [...homes, clientDir],
  });
  return {
    dir,
    replicas: written.replicas.map((replica) => ({
      id: replica.id,
      host: targets[replica.id]!.host,
      port: targets[replica.id]!.port,
      home: replica.home,
      peerId: replica.peerId,
      multiaddr: replica.multiaddr,
      listen: replica.listen!,
      metricsPort: metricsPorts[replica.id]!,
    })),
    client: { dir: clientDir, clusterFile },
    accounts: written.accounts,
  };
}
