/**
 * What `pbft testnet init` and `pbft cluster init` share: a key for every replica, funded account
 * keys, genesis.json and cluster.json. Where each of them goes is the caller's layout: a testnet
 * keeps one cluster.json beside its replica folders, a cluster across machines gives every machine
 * its own folder with its own copy.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSeed, type KeyPair, writeKeyFile } from '../crypto/index.ts';
import { formatGenesis } from '../ledger/index.ts';
import {
  type ClusterConfig,
  DEFAULT_CLUSTER_PROTOCOL,
  DEFAULT_RUNTIME_SETTINGS,
  formatClusterConfig,
} from '../node/cluster-config.ts';
import { validateProtocolConfig } from '../protocol/config.ts';
import { peerIdFromSeed } from '../transport/index.ts';
import { CliError, EXIT_USAGE } from './exit-codes.ts';

export const ACCOUNT_NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
/** Every development account starts with this balance. */
export const ACCOUNT_BALANCE = 1_000_000;
/**
 * Development accounts a testnet may have: enough for heavy-load runs (hundreds of clients, each
 * with a sender and a sink account), well inside the ledger's account cap.
 */
export const TESTNET_ACCOUNTS_MAX = 5_000;

export function accountName(index: number): string {
  return ACCOUNT_NAMES[index] ?? `account-${index + 1}`;
}

/** Refuses (one line, exit 2) a replica count that is not 3f+1 or that the default protocol cannot serve. */
export function checkReplicaCount(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 4 || (n - 1) % 3 !== 0)
    throw new CliError(EXIT_USAGE, `${what} must be 3f+1 (4, 7, 10, …), got ${n}`);
  try {
    validateProtocolConfig({ replicaCount: n, ...DEFAULT_CLUSTER_PROTOCOL });
  } catch (error) {
    throw new CliError(EXIT_USAGE, `${what} ${n}: ${(error as Error).message}`);
  }
}

export function checkAccountCount(accounts: number): void {
  if (!Number.isInteger(accounts) || accounts < 1 || accounts > TESTNET_ACCOUNTS_MAX)
    throw new CliError(EXIT_USAGE, `--accounts must be between 1 and ${TESTNET_ACCOUNTS_MAX}`);
}

export interface ReplicaLayout {
  /** The replica's home folder: its key.json goes there, and nowhere else. */
  home: string;
  /** Where the others dial it. */
  multiaddr: string;
  /** Where it binds, if not at `multiaddr`. */
  listen?: string;
  metricsPort: number;
}

export interface ClusterLayout {
  name: string;
  testnet: boolean;
  /** In id order. */
  replicas: ReplicaLayout[];
  accounts: number;
  /** Folder for the accounts' key files. */
  accountsDir: string;
  /** Folders that each get a copy of cluster.json and genesis.json. */
  configDirs: string[];
}

export interface WrittenReplica {
  id: number;
  home: string;
  peerId: string;
  multiaddr: string;
  listen?: string;
}

export interface WrittenAccount {
  name: string;
  address: string;
  file: string;
}

export interface WrittenCluster {
  replicas: WrittenReplica[];
  accounts: WrittenAccount[];
}

/** Write every key, genesis.json and cluster.json of a new cluster (the counts already checked). */
export async function writeClusterFiles(layout: ClusterLayout): Promise<WrittenCluster> {
  const n = layout.replicas.length;
  const replicas: ClusterConfig['replicas'] = [];
  const written: WrittenCluster = { replicas: [], accounts: [] };
  for (const [id, replica] of layout.replicas.entries()) {
    await mkdir(replica.home, { recursive: true, mode: 0o700 });
    const seed = generateSeed();
    const key = writeKeyFile(join(replica.home, 'key.json'), seed);
    const peerId = await peerIdFromSeed(seed);
    replicas.push({
      id,
      publicKey: key.publicKeyHex,
      peerId,
      multiaddrs: [replica.multiaddr],
      ...(replica.listen === undefined ? {} : { listen: [replica.listen] }),
      metricsPort: replica.metricsPort,
    });
    written.replicas.push({
      id,
      home: replica.home,
      peerId,
      multiaddr: replica.multiaddr,
      ...(replica.listen === undefined ? {} : { listen: replica.listen }),
    });
  }
  await mkdir(layout.accountsDir, { recursive: true, mode: 0o700 });
  const genesisAccounts = [];
  for (let index = 0; index < layout.accounts; index++) {
    const name = accountName(index);
    const file = join(layout.accountsDir, `${name}.json`);
    const key: KeyPair = writeKeyFile(file, generateSeed(), { withAddress: true });
    genesisAccounts.push({ address: key.publicKey, balance: ACCOUNT_BALANCE });
    written.accounts.push({ name, address: key.publicKeyHex, file });
  }
  const genesis = formatGenesis({ accounts: genesisAccounts });
  const cluster = formatClusterConfig({
    name: layout.name,
    testnet: layout.testnet,
    f: (n - 1) / 3,
    replicas,
    genesis: 'genesis.json',
    protocol: { replicaCount: n, ...DEFAULT_CLUSTER_PROTOCOL },
    runtime: DEFAULT_RUNTIME_SETTINGS,
  });
  for (const dir of layout.configDirs) {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'genesis.json'), genesis);
    await writeFile(join(dir, 'cluster.json'), cluster);
  }
  return written;
}
