/**
 * Replica processes that die with the run that started them (`pbft testnet start`, the real-process
 * tests, the chaos runner, the benchmark), so an interrupted run leaves no cluster behind.
 *
 * The starting side, `spawnInOwnGroup`: each child leads its own process group (and session), so a
 * terminal's Ctrl-C or hang-up reaches the run, which decides, rather than every replica at once.
 * Its whole group is killed with SIGKILL when this process exits; on SIGINT, SIGTERM or SIGHUP
 * that nothing else in this process handles (a handler that does, such as a graceful stop, ends
 * in an exit, and the exit kills what is left); and when this process's stdout pipe closes (EPIPE).
 *
 * The child's side, `exitWithParent`: the spawner puts its pid, and the pids it was itself told to
 * watch, in PBFT_EXIT_WITH_PARENT. Every second the child checks that each of them is alive (and
 * that it has not been re-parented); once one is gone it sends itself SIGTERM, so it stops the way
 * Ctrl-C stops it, and exits regardless a few seconds later. This covers what no handler in the
 * spawner can: a SIGKILL of the run.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Comma-separated pids a process started with it exits after (see `exitWithParent`). */
export const EXIT_WITH_PARENT_ENV = 'PBFT_EXIT_WITH_PARENT';
export const PARENT_CHECK_INTERVAL_MS = 1_000;
/** After sending itself SIGTERM because a parent is gone, a process exits at the latest this late. */
export const PARENT_GONE_EXIT_MAX_MS = 5_000;
const EXIT_PARENT_GONE = 1;
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Children whose process group is killed when this process goes. */
const groups = new Set<ChildProcess>();
let hooksInstalled = false;

/** The pids a child of this process watches: this process, then what this process was told to watch. */
export function exitWithParentValue(env: NodeJS.ProcessEnv = process.env): string {
  const pids = [process.pid, ...parsePids(env[EXIT_WITH_PARENT_ENV])];
  return [...new Set(pids)].join(',');
}

/**
 * `spawn` for a replica (or anything that starts replicas): its own process group, told to exit with
 * this process, and killed with its group when this process exits or is interrupted.
 */
export function spawnInOwnGroup(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  installHooks();
  const env = { ...(options.env ?? process.env), [EXIT_WITH_PARENT_ENV]: exitWithParentValue(options.env) };
  const child = spawn(command, args, { ...options, env, detached: true });
  if (child.pid !== undefined) {
    groups.add(child);
    child.once('exit', () => groups.delete(child));
  }
  return child;
}

/** SIGKILL every process group started by `spawnInOwnGroup` that is still running. */
export function killOwnGroups(): void {
  for (const child of groups) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  groups.clear();
}

/** How many process groups started here are still running (for tests). */
export function ownGroupCount(): number {
  return groups.size;
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killOwnGroups);
  for (const signal of SIGNALS) {
    const onSignal = (): void => {
      // Prepended, so this runs before any other handler, including one registered with `once`.
      if (process.listeners(signal).length > 1) return; // someone else stops the run
      killOwnGroups();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal); // the default action: terminate by this signal
    };
    process.prependListener(signal, onSignal);
  }
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    // Nobody reads this run's output any more: it has been abandoned.
    killOwnGroups();
    if (process.stdout.listenerCount('error') === 1) process.exit(EXIT_PARENT_GONE);
  });
}

function parsePids(value: string | undefined): number[] {
  if (value === undefined || value.trim() === '') return [];
  return value
    .split(',')
    .map((part) => Number(part.trim()))
    .filter((pid) => Number.isSafeInteger(pid) && pid > 1);
}

/** Alive and not a zombie (a dead process its parent has not reaped still answers kill(pid, 0)). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no /proc: kill(pid, 0) is all there is
  }
}

/**
 * If PBFT_EXIT_WITH_PARENT names processes, check every second that they are alive; once one is
 * gone, call `onParentGone` (by default: say so on stderr, send this process SIGTERM, and exit
 * PARENT_GONE_EXIT_MAX_MS later if it is still running). Returns whether anything is watched.
 */
export function exitWithParent(
  onParentGone: (pid: number) => void = stopBecauseParentIsGone,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const pids = parsePids(env[EXIT_WITH_PARENT_ENV]);
  if (pids.length === 0) return false;
  const parentAtStart = process.ppid;
  const timer = setInterval(() => {
    const gone = pids.find(
      (pid) => !isProcessAlive(pid) || (pid === parentAtStart && process.ppid !== parentAtStart),
    );
    if (gone === undefined) return;
    clearInterval(timer);
    onParentGone(gone);
  }, PARENT_CHECK_INTERVAL_MS);
  timer.unref();
  return true;
}

function stopBecauseParentIsGone(pid: number): void {
  // stderr may be a pipe to the process that is gone: a write error must not stop the stopping.
  process.stderr.on('error', () => {});
  try {
    process.stderr.write(`pbft: process ${pid} (${EXIT_WITH_PARENT_ENV}) is gone; stopping\n`);
  } catch {
    // nobody to tell
  }
  setTimeout(() => process.exit(EXIT_PARENT_GONE), PARENT_GONE_EXIT_MAX_MS).unref();
  process.kill(process.pid, 'SIGTERM');
}
