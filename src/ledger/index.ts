/** The deterministic replicated ledger: operations, genesis, and the state machine the protocol drives. */
export {
  formatGenesis,
  GENESIS_TEXT_LENGTH_MAX,
  type Genesis,
  type GenesisAccount,
  GenesisError,
  type GenesisErrorCode,
  genesisSupply,
  parseGenesis,
  validateGenesis,
} from './genesis.ts';
export {
  type AccountEntry,
  type AccountState,
  Ledger,
  SNAPSHOT_FORMAT_VERSION,
} from './ledger.ts';
export {
  ACCOUNT_COUNT_MAX,
  ADDRESS_LENGTH_BYTES,
  OPERATION_SIZE_MAX_BYTES,
  RESULT_MESSAGE_LENGTH_MAX,
  RESULT_SIZE_MAX_BYTES,
  SNAPSHOT_SIZE_MAX_BYTES,
  SUPPLY_MAX,
} from './limits.ts';
export {
  type BalanceOperation,
  type BalanceResult,
  decodeOperation,
  decodeResult,
  encodeOperation,
  encodeResult,
  OPERATION_TYPES,
  type Operation,
  type OperationResult,
  type OperationType,
  REJECTION_REASONS,
  type Rejection,
  type RejectionReason,
  type TransferOperation,
  type TransferResult,
} from './operations.ts';
