/**
 * Hand-made replicas for client tests: four real libp2p replica transports whose client frames go
 * to `answer` instead of a core, and a ClusterConnection to them. The tests decide what each
 * replica says (lies, refusals, busy answers) and watch what the client does; `liarSays` puts an
 * honest answer through a Byzantine strategy, so the lies are the ones real liars tell.
 */
import { join } from 'node:path';
import type { ByzantineStrategy, ClientAnswer } from '../../../src/byzantine/strategies.ts';
import { ClusterConnection } from '../../../src/client/client.ts';
import { sha256 } from '../../../src/crypto/index.ts';
import type { ClusterConfig } from '../../../src/node/cluster-config.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { startCluster } from '../transport/helpers.ts';

export type Answer = (replica: number, session: ClientSession, frame: Uint8Array) => void;

export async function handMadeReplicas(
  name: string,
  dir: string,
  answer: Answer,
): Promise<{ connection: ClusterConnection; stop: () => Promise<void> }> {
  const cluster = await startCluster(4, {});
  for (const replica of cluster.replicas) {
    // The helper records client frames; these replicas answer them instead.
    replica.clientFrames.push = (...entries) => {
      for (const { session, frame } of entries) answer(replica.id, session, frame);
      return 0;
    };
  }
  const config = {
    name,
    testnet: true,
    f: 1,
    replicas: cluster.peers.map((peer) => ({ ...peer, publicKey: '', metricsPort: 0 })),
    path: join(dir, 'cluster.json'),
  } as unknown as ClusterConfig;
  const connection = await ClusterConnection.open({ cluster: config });
  return {
    connection,
    stop: async () => {
      await connection.close();
      await cluster.stop();
    },
  };
}

/** What `strategy` tells a client instead of the honest `answer` (it must send one frame of its kind). */
export function liarSays<A extends ClientAnswer>(strategy: ByzantineStrategy, answer: A): A {
  const told = strategy.toClient(answer, {
    id: 3,
    replicaCount: 4,
    view: 0,
    lowWatermark: 0,
    watermarkWindow: 256,
    checkpointInterval: 64,
    random: { int: (from) => from, chance: () => false, bytes: (length) => new Uint8Array(length) },
    sign: () => new Uint8Array(64),
    sha256,
  });
  if (told.length !== 1 || told[0]!.type !== answer.type)
    throw new Error(`${strategy.behaviour} did not answer one ${answer.type}`);
  return told[0] as A;
}
