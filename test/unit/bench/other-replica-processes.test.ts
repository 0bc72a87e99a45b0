/**
 * `npm run bench` warns about replicas of another run sharing the machine: it finds `pbft node`
 * processes in /proc that are not its own children.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { isReplicaCommandLine, otherReplicaProcesses } from '../../../scripts/lib/process-cluster.ts';

/** A process whose command line looks like a replica's: node -e … /somewhere/bin/pbft.js node --home … */
const LOOKALIKE_ARGS = ['-e', 'setInterval(() => {}, 1000)', '/somewhere/bin/pbft.js', 'node', '--home', 'h'];

const started: ChildProcess[] = [];
const strangers: number[] = [];
afterEach(() => {
  for (const child of started.splice(0)) child.kill('SIGKILL');
  for (const pid of strangers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

describe('other replica processes', () => {
  it('finds a pbft node process another process started, and leaves out its own children', async () => {
    const own = spawn(process.execPath, LOOKALIKE_ARGS, { stdio: 'ignore' });
    started.push(own);
    // The stranger's parent is another process: it stands for a testnet or a chaos run.
    const starter = spawn(
      process.execPath,
      [
        '-e',
        `const child = require('node:child_process').spawn(process.execPath, ${JSON.stringify(LOOKALIKE_ARGS)}, { stdio: 'ignore' });
         console.log(child.pid);
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    started.push(starter);
    const strangerPid = await new Promise<number>((resolve) =>
      createInterface({ input: starter.stdout! }).once('line', (line) => resolve(Number(line))),
    );
    strangers.push(strangerPid);

    await expect
      .poll(() => otherReplicaProcesses().map((found) => found.pid), { timeout: 10_000 })
      .toContain(strangerPid);
    const found = otherReplicaProcesses();
    expect(found.map((process) => process.pid)).not.toContain(own.pid);
    expect(found.find((process) => process.pid === strangerPid)).toMatchObject({
      ppid: starter.pid,
      commandLine: expect.stringContaining('/somewhere/bin/pbft.js node --home h'),
    });
  });

  it('recognises a replica by the pbft launcher followed by the node command', () => {
    expect(isReplicaCommandLine(['node', '/x/bin/pbft.js', 'node', '--home', 'h'])).toBe(true);
    expect(isReplicaCommandLine(['pbft', 'node', '--home', 'h'])).toBe(true);
    expect(isReplicaCommandLine(['node', '/x/bin/pbft.js', 'status'])).toBe(false);
    expect(isReplicaCommandLine(['node', '/x/bin/pbft.js', 'testnet', 'start'])).toBe(false);
    expect(isReplicaCommandLine(['node', 'scripts/bench.ts', 'node'])).toBe(false);
    expect(isReplicaCommandLine(['node', '/x/not-pbft.js', 'node'])).toBe(false);
  });
});
