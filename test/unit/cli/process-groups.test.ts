/**
 * Processes started with `spawnInOwnGroup` die with the process that started them: their group is
 * killed when it exits, on SIGINT, SIGTERM and SIGHUP it does not handle itself, and when its
 * stdout pipe closes; and a child that watches PBFT_EXIT_WITH_PARENT (every `pbft node`) exits by
 * itself after a SIGKILL of its parent, which no hook can catch.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EXIT_WITH_PARENT_ENV, isProcessAlive } from '../../../src/cli/process-groups.ts';
import { initTestnet } from '../../../src/cli/testnet.ts';
import { basePortFor, PBFT_BIN } from '../../e2e/helpers.ts';

const SPAWNER = fileURLToPath(new URL('./fixtures/spawner.ts', import.meta.url));
/** Generous: the parent check runs every second, and this machine is shared. */
const GONE_TIMEOUT_MS = 15_000;

const leftovers: number[] = [];
const directories: string[] = [];
afterEach(async () => {
  for (const pid of leftovers.splice(0)) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL'); // its group if it leads one, and the process itself
      } catch {
        // gone, as it should be
      }
    }
  }
  for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
});

interface Started {
  spawner: ChildProcess;
  childPid: number;
  lines: string[];
}

/** The spawner fixture in `mode`, with a child of `kind`; resolves once it has printed the child's pid. */
async function startSpawner(mode: string, kind: 'watcher' | 'plain'): Promise<Started> {
  const spawner = spawn(process.execPath, [SPAWNER, mode, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  leftovers.push(spawner.pid!);
  const lines: string[] = [];
  const reader = createInterface({ input: spawner.stdout! });
  const childPid = await new Promise<number>((resolve, reject) => {
    reader.once('line', (line) => resolve((JSON.parse(line) as { pid: number }).pid));
    spawner.once('exit', () => reject(new Error('the spawner exited before starting its child')));
  });
  reader.on('line', (line) => lines.push(line));
  leftovers.push(childPid);
  return { spawner, childPid, lines };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

async function expectGone(pid: number): Promise<void> {
  await expect.poll(() => isProcessAlive(pid), { timeout: GONE_TIMEOUT_MS, interval: 100 }).toBe(false);
}

describe('process groups that die with their starter', () => {
  it('a child watching its parent exits by itself after a SIGKILL of the parent; one that does not watch survives it', async () => {
    const watched = await startSpawner('wait', 'watcher');
    const unwatched = await startSpawner('wait', 'plain');
    expect(isProcessAlive(watched.childPid)).toBe(true);
    watched.spawner.kill('SIGKILL');
    unwatched.spawner.kill('SIGKILL');
    await Promise.all([exited(watched.spawner), exited(unwatched.spawner)]);
    await expectGone(watched.childPid);
    // The control: no hook runs on SIGKILL, so only the watching child knew to go.
    expect(isProcessAlive(unwatched.childPid)).toBe(true);
  });

  it("the child's process group is killed when its starter exits", async () => {
    const { spawner, childPid } = await startSpawner('exit', 'plain');
    expect(await exited(spawner)).toEqual({ code: 0, signal: null });
    await expectGone(childPid);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)(
    "the child's process group is killed on %s, and the starter then dies of that signal",
    async (signal) => {
      const { spawner, childPid } = await startSpawner('wait', 'plain');
      spawner.kill(signal);
      expect(await exited(spawner)).toEqual({ code: null, signal });
      await expectGone(childPid);
    },
  );

  it('a signal the starter handles itself is left to it, and its exit then kills the group', async () => {
    const { spawner, childPid, lines } = await startSpawner('graceful', 'plain');
    spawner.kill('SIGINT');
    await expect.poll(() => lines, { timeout: GONE_TIMEOUT_MS }).toContain('stopping');
    expect(isProcessAlive(childPid)).toBe(true);
    expect(spawner.exitCode).toBeNull();
    // Its handler was a `once`: the next SIGINT finds no handler but the group's, which kills.
    spawner.kill('SIGINT');
    expect(await exited(spawner)).toEqual({ code: null, signal: 'SIGINT' });
    await expectGone(childPid);
  });

  it("the child's process group is killed when its starter's stdout pipe closes", async () => {
    const { spawner, childPid } = await startSpawner('chatty', 'plain');
    spawner.stdout!.destroy();
    expect(await exited(spawner)).toEqual({ code: 1, signal: null });
    await expectGone(childPid);
  });

  it("the child's process group is killed when its starter's stdout pipe closes, even if the starter carries on", async () => {
    const { spawner, childPid } = await startSpawner('chatty-deaf', 'plain');
    spawner.stdout!.destroy();
    await expectGone(childPid);
    expect(spawner.exitCode).toBeNull();
  });

  it(`pbft node stops once the process named in ${EXIT_WITH_PARENT_ENV} is gone`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pbft-exit-with-parent-'));
    directories.push(dir);
    await initTestnet({
      dir,
      replicas: 4,
      basePort: basePortFor('test/unit/cli/process-groups.test.ts'),
      accounts: 1,
      force: false,
    });
    const parent = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    leftovers.push(parent.pid!);
    const replica = spawn(process.execPath, [PBFT_BIN, 'node', '--home', join(dir, 'replica-0')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [EXIT_WITH_PARENT_ENV]: String(parent.pid) },
    });
    leftovers.push(replica.pid!);
    let log = '';
    replica.stdout!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    replica.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    await expect.poll(() => log, { timeout: GONE_TIMEOUT_MS }).toContain('"msg":"replica started"');
    expect(replica.exitCode).toBeNull();
    parent.kill('SIGKILL');
    // It stops the way SIGTERM stops it: cleanly, saying why.
    expect(await exited(replica)).toEqual({ code: 0, signal: null });
    expect(log).toContain(`process ${parent.pid} (${EXIT_WITH_PARENT_ENV}) is gone; stopping`);
    expect(log).toContain('"msg":"replica stopped"');
  });
});
