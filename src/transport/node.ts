/**
 * The libp2p node both sides use: TCP + Noise + Yamux and nothing else (no identify, no discovery,
 * no DHT). Peers are known from the cluster configuration, so nothing needs to be learned from the
 * network, and every extra protocol would be attack surface.
 */
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { ConnectionGater, PrivateKey } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';

/**
 * libp2p's default refuses a host's sixth connection within a second. In a testnet every replica and
 * client shares 127.0.0.1, and a burst of CLI invocations or benchmark clients would be refused.
 */
export const INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX = 100;

export interface NodeOptions {
  privateKey: PrivateKey;
  listen: string[];
  connectionGater: ConnectionGater;
}

export async function createLibp2pNode(options: NodeOptions): Promise<Libp2p> {
  return createLibp2p({
    privateKey: options.privateKey,
    start: false,
    addresses: { listen: options.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: options.connectionGater,
    connectionManager: { inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX },
  });
}

/** The slice of libp2p's internals that `stopLibp2pNode` reaches into; every step is optional. */
interface AddressManagerInternals {
  components?: { addressManager?: { _updatePeerStoreAddresses?: { stop?(): void } } };
}

/**
 * Stop the node and leave no timer behind. libp2p 3.3.11's address manager answers the listeners
 * closing during stop by arming a 1 s debounce timer (ref'd) that nothing clears, so a process that
 * stopped its node would still linger for a second before it could exit.
 */
export async function stopLibp2pNode(node: Libp2p): Promise<void> {
  await node.stop();
  (
    node as unknown as AddressManagerInternals
  ).components?.addressManager?._updatePeerStoreAddresses?.stop?.();
}
