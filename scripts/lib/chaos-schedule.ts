/**
 * The chaos runner's fault schedule, drawn from a seed: the same seed and options give the same
 * episodes, so a failing run can be repeated with `--seed`. (The processes themselves are real and
 * not deterministic; the schedule is what the seed pins down.)
 *
 * Episodes run one after another and each puts at most f replicas at fault, counting a lying
 * replica: PBFT promises safety and progress only while no more than f replicas are faulty.
 * 'kill' and 'pause' hit one to f replicas, the primary half the time; 'primary-kill' and
 * 'primary-pause' always hit exactly the primary of the moment, to measure how fast a view change
 * brings committing back. 'hostile-client' targets no replica: a client attacks (hostile-client.ts).
 * 'storage' kills one replica, damages its LevelDB directory (chaos-storage.ts) and restarts it:
 * a replica recovering from lost storage is one of the f faults until it has recovered, so it hits
 * exactly one replica, and the runner waits for that recovery before the next episode starts.
 */
import { BYZANTINE_BEHAVIOURS, type ByzantineBehaviour } from '../../src/byzantine/strategies.ts';
import { Random } from '../../src/util/random.ts';
import { drawDamage, type StorageDamage } from './chaos-storage.ts';
import type { NetnsCapability, NetnsSupport } from './netns.ts';

export const FAULT_CLASSES = [
  'kill',
  'pause',
  'primary-kill',
  'primary-pause',
  'byzantine',
  'hostile-client',
  'storage',
  'partition',
  'throttle',
  'delay',
  'loss',
] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number];
/** The faults that need separate network namespaces. */
export const NETWORK_FAULT_CLASSES: readonly FaultClass[] = ['partition', 'throttle', 'delay', 'loss'];
/**
 * The faults aimed at the primary of the moment, whose recovery is measured from the fault's start
 * and judged against throughput in quiet windows before and after (see chaos-recovery.ts).
 */
export const PRIMARY_FAULT_CLASSES: readonly FaultClass[] = ['primary-kill', 'primary-pause'];
/**
 * Throughput is compared over this long before a fault and after recovery; the runner keeps these
 * windows free of other faults for the primary classes.
 */
export const THROUGHPUT_WINDOW_MS = 10_000;

export function isFaultClass(name: string): name is FaultClass {
  return (FAULT_CLASSES as readonly string[]).includes(name);
}

export function isPrimaryFault(fault: FaultClass): boolean {
  return PRIMARY_FAULT_CLASSES.includes(fault);
}

/** What each network class needs besides namespaces (see netns.ts). */
const NEEDS: Partial<Record<FaultClass, NetnsCapability>> = { delay: 'netem', loss: 'nftables' };

/**
 * Why `fault` cannot be injected on a machine with `support` (from probeNetns; null when it was not
 * probed), or undefined when it can. Process faults (kill, pause, byzantine and the primary
 * classes) need nothing from the network.
 */
export function unavailableReason(fault: FaultClass, support: NetnsSupport | null): string | undefined {
  if (!NETWORK_FAULT_CLASSES.includes(fault)) return undefined;
  if (support === null) return 'the network was not probed';
  if (!support.available.namespaces) return support.missing.namespaces;
  const needed = NEEDS[fault];
  if (needed !== undefined && !support.available[needed]) return support.missing[needed];
  return undefined;
}

/** 'primary' is whichever replica leads when the episode starts: the target that forces a view change. */
export type FaultTarget = 'primary' | number;

export interface FaultEpisode {
  index: number;
  fault: FaultClass;
  /** Quiet time before the episode starts. */
  gapMs: number;
  durationMs: number;
  targets: FaultTarget[];
  /** For 'byzantine': what the targets do while they lie. */
  behaviour?: ByzantineBehaviour;
  /** For 'storage': what is done to the stopped replica's data directory. */
  damage?: StorageDamage;
}

export interface ScheduleOptions {
  seed: number;
  replicas: number;
  classes: readonly FaultClass[];
  /** The fault phase lasts at least this long, and long enough for every class to occur once. */
  durationMs: number;
  /** A pause is longer than this, so the paused replica wakes up into a newer view. */
  viewChangeTimeoutMs: number;
  /** The replicas that lie during 'byzantine' episodes (one per f). */
  liars: readonly number[];
}

const GAP_MS = [1_000, 3_000] as const;
const KILL_DOWN_MS = [1_000, 4_000] as const;
const PARTITION_MS = [3_000, 6_000] as const;
const DEGRADED_LINK_MS = [4_000, 8_000] as const;
const LIAR_MS = [4_000, 8_000] as const;
/** A pause (and a killed primary's time down) lasts 1.5 to 3 view-change timeouts. */
const PAUSE_TIMEOUTS = [1.5, 3] as const;

export function faultCount(replicas: number): number {
  return Math.floor((replicas - 1) / 3);
}

/** The replicas that lie in 'byzantine' episodes: f of them, drawn from the seed. */
export function chooseLiars(seed: number, replicas: number): number[] {
  const random = new Random(seed).fork();
  const ids = Array.from({ length: replicas }, (_, id) => id);
  return random
    .shuffle(ids)
    .slice(0, faultCount(replicas))
    .sort((a, b) => a - b);
}

export function generateSchedule(options: ScheduleOptions): FaultEpisode[] {
  if (options.classes.length === 0) return [];
  const random = new Random(options.seed);
  const f = faultCount(options.replicas);
  const episodes: FaultEpisode[] = [];
  // Every class once, in a seeded order, before any repeats; then classes drawn at random.
  const firstRound = random.shuffle(options.classes);
  let elapsedMs = 0;
  while (elapsedMs < options.durationMs || episodes.length < firstRound.length) {
    const fault =
      episodes.length < firstRound.length ? firstRound[episodes.length]! : random.pick(options.classes);
    const gapMs = random.int(GAP_MS[0], GAP_MS[1]);
    const episode: FaultEpisode = {
      index: episodes.length,
      fault,
      gapMs,
      durationMs: durationOf(fault, random, options.viewChangeTimeoutMs),
      targets:
        fault === 'byzantine'
          ? [...options.liars]
          : fault === 'hostile-client'
            ? []
            : isPrimaryFault(fault)
              ? ['primary']
              : targetsOf(random, options.replicas, fault === 'storage' ? 1 : f),
    };
    if (fault === 'byzantine') episode.behaviour = random.pick(BYZANTINE_BEHAVIOURS);
    if (fault === 'storage') episode.damage = drawDamage(random);
    episodes.push(episode);
    elapsedMs += episodeSpanMs(episode);
  }
  return episodes;
}

/**
 * How long an episode takes at least, its gap included: a primary fault also takes a quiet window
 * before it and one after its recovery.
 */
export function episodeSpanMs(episode: FaultEpisode): number {
  return episode.gapMs + episode.durationMs + (isPrimaryFault(episode.fault) ? 2 * THROUGHPUT_WINDOW_MS : 0);
}

function durationOf(fault: FaultClass, random: Random, viewChangeTimeoutMs: number): number {
  const between = ([low, high]: readonly [number, number]): number => random.int(low, high);
  switch (fault) {
    case 'kill':
    case 'storage':
      return between(KILL_DOWN_MS);
    // A killed primary stays down as long as a paused one stays stopped: long enough that the
    // backups' timers expire and they change views without it, short enough that it sometimes
    // comes back while they are still changing.
    case 'pause':
    case 'primary-kill':
    case 'primary-pause':
      return between([
        Math.round(PAUSE_TIMEOUTS[0] * viewChangeTimeoutMs),
        Math.round(PAUSE_TIMEOUTS[1] * viewChangeTimeoutMs),
      ]);
    case 'byzantine':
    case 'hostile-client':
      return between(LIAR_MS);
    case 'partition':
      return between(PARTITION_MS);
    case 'throttle':
    case 'delay':
    case 'loss':
      return between(DEGRADED_LINK_MS);
  }
}

/** One to f replicas; half the time the first of them is the primary. */
function targetsOf(random: Random, replicas: number, f: number): FaultTarget[] {
  const count = random.int(1, f);
  const ids = random.shuffle(Array.from({ length: replicas }, (_, id) => id)).slice(0, count);
  const targets: FaultTarget[] = ids;
  if (random.chance(0.5)) targets[0] = 'primary';
  return targets;
}

/** Turn targets into replica ids, given the primary of the moment (no replica twice). */
export function resolveTargets(targets: readonly FaultTarget[], primary: number, replicas: number): number[] {
  const resolved: number[] = [];
  for (const target of targets) {
    let id = target === 'primary' ? primary : target;
    // A numbered target that is the primary already taken: move to the next free replica.
    while (resolved.includes(id)) id = (id + 1) % replicas;
    resolved.push(id);
  }
  return resolved;
}

export function describeEpisode(episode: FaultEpisode): string {
  const targets = episode.targets.map((target) =>
    target === 'primary' ? 'the primary' : `replica ${target}`,
  );
  const what =
    episode.fault === 'byzantine'
      ? `byzantine (${episode.behaviour})`
      : episode.fault === 'storage'
        ? `storage (${episode.damage})`
        : episode.fault;
  const on = targets.length === 0 ? 'the client protocol' : targets.join(' and ');
  return `#${episode.index} ${what} on ${on} for ${episode.durationMs} ms`;
}
