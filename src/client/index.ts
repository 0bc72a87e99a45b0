/**
 * The client alone (`import { PbftClient } from 'pbft/client'`): everything a program needs to send
 * transfers and read balances, without the replica's modules (LevelDB, the logger, the protocol's
 * storage). `test/package/package.test.ts` checks that importing it loads no LevelDB.
 */

export { generateSeed, KeyPair, readKeyFile, writeKeyFile } from '../crypto/index.ts';
export { type ClusterConfig, ConfigFileError, readClusterConfig } from '../node/cluster-config.ts';
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
} from './client.ts';
