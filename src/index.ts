/**
 * pbft as a library: embed a replica (`startReplica`) or a client (`PbftClient`) in a program.
 */

export { initTestnet } from './cli/testnet.ts';
export {
  type BalanceAnswer,
  ClusterConnection,
  type ClusterConnectionOptions,
  PbftClient,
  PbftClientError,
  type PbftClientErrorCode,
  type PbftClientOptions,
  type ReplicaStatusReport,
  RequestRefusedError,
  type TransferReceipt,
  TransferRejectedError,
} from './client/client.ts';
export { generateSeed, KeyPair, readKeyFile, writeKeyFile } from './crypto/index.ts';
export { type ClusterConfig, ConfigFileError, readClusterConfig } from './node/cluster-config.ts';
export {
  type ReplicaNode,
  type ReplicaStatus,
  type StartReplicaOptions,
  startReplica,
} from './node/replica-node.ts';
