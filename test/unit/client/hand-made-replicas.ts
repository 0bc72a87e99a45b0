/**
 * Hand-made replicas for client tests: four real libp2p replica transports whose client frames go
 * to `answer` instead of a core, and a ClusterConnection to them. The tests decide what each
 * replica says (lies, refusals, busy answers) and watch what the client does.
 */
import { join } from 'node:path';
import { ClusterConnection } from '../../../src/client/client.ts';
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
