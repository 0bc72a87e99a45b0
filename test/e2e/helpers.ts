/** Shared by the real-process tests. */
import { join } from 'node:path';
import { PbftClient, readKeyFile } from '../../src/index.ts';

/** Attempts, 200 ms apart, to reach a cluster whose replica processes are still starting. */
const CONNECT_ATTEMPTS = 50;

/** A client for `account` (a file in DIR/accounts) once the testnet in `dir` answers, or null. */
export async function connectWhenUp(dir: string, account: string): Promise<PbftClient | null> {
  for (let attempt = 0; attempt < CONNECT_ATTEMPTS; attempt++) {
    const client = await PbftClient.connect({
      cluster: join(dir, 'cluster.json'),
      key: readKeyFile(join(dir, 'accounts', `${account}.json`)),
      counterFile: join(dir, `${account}.counter`),
      timeoutMs: 30_000,
    }).catch(() => null);
    if (client !== null) return client;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return null;
}
