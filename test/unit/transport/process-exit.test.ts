/** stop() leaves nothing behind: a process that stops its transports on SIGTERM exits by itself, at once. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const FIXTURE = fileURLToPath(new URL('./fixtures/exit-on-sigterm.ts', import.meta.url));
/** Exit must follow stop within this; libp2p's stray 1 s timer would blow it. */
const EXIT_AFTER_STOP_MAX_MS = 300;

it('exits 0 right after stopping replicas and a client on SIGTERM', async () => {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    output += chunk;
    if (chunk.includes('ready')) child.kill('SIGTERM');
  });
  expect(await exited).toBe(0);
  const match = /exited (\d+) ms after stop/.exec(output);
  expect(match, output).not.toBeNull();
  expect(Number(match![1])).toBeLessThan(EXIT_AFTER_STOP_MAX_MS);
});
