/**
 * How fast committing comes back after a fault, from what the load clients saw: when each
 * acknowledged transfer was sent and when f+1 replicas answered it.
 *
 * Recovery is measured from the fault's start to the first acknowledgement of a transfer *sent*
 * at or after that start. Transfers already in flight can still commit just after a primary dies
 * (the backups hold their PRE-PREPAREs), so the first acknowledgement of any transfer would say
 * "recovered" before the view change has even begun. A closed-loop client sends its next transfer
 * only after the previous one is answered, so a transfer sent after the start goes to a primary
 * that is dead or stopped and commits only once a view change (or the primary's return) lets it.
 *
 * Throughput is compared over a window before the fault's start and one after recovery; a
 * window is measured only when no other fault overlaps it and the load ran all through it.
 */

/** Throughput after recovery must be at least this share of the throughput before the fault. */
export const THROUGHPUT_RECOVERED_FRACTION = 0.5;

/** A time interval [fromMs, toMs), in `clockMs` milliseconds. */
export interface Interval {
  fromMs: number;
  toMs: number;
}

/** Acknowledged transfers, each with the time it was sent and the time it was acknowledged. */
export class AckTimeline {
  private readonly entries: Array<{ sentAtMs: number; completedAtMs: number }> = [];
  private sorted = true;

  /** Add acknowledgements (parallel arrays, as a load window carries them), in any order. */
  add(sentAtMs: readonly number[], completedAtMs: readonly number[]): void {
    if (sentAtMs.length !== completedAtMs.length)
      throw new RangeError('sent and completed times differ in number');
    for (const [index, completed] of completedAtMs.entries()) {
      const last = this.entries.at(-1);
      if (last !== undefined && completed < last.completedAtMs) this.sorted = false;
      this.entries.push({ sentAtMs: sentAtMs[index]!, completedAtMs: completed });
    }
  }

  get size(): number {
    return this.entries.length;
  }

  private ordered(): ReadonlyArray<{ sentAtMs: number; completedAtMs: number }> {
    if (!this.sorted) {
      this.entries.sort((a, b) => a.completedAtMs - b.completedAtMs);
      this.sorted = true;
    }
    return this.entries;
  }

  /** Index of the first entry acknowledged at or after `atMs`. */
  private firstIndexFrom(atMs: number): number {
    const entries = this.ordered();
    let low = 0;
    let high = entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (entries[middle]!.completedAtMs < atMs) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** When the first transfer sent at or after `startMs` was acknowledged, or null if none was yet. */
  firstCommitSentFrom(startMs: number): number | null {
    const entries = this.ordered();
    for (let index = this.firstIndexFrom(startMs); index < entries.length; index++) {
      if (entries[index]!.sentAtMs >= startMs) return entries[index]!.completedAtMs;
    }
    return null;
  }

  /** Acknowledgements in [fromMs, toMs). */
  countIn(interval: Interval): number {
    return this.firstIndexFrom(interval.toMs) - this.firstIndexFrom(interval.fromMs);
  }

  /**
   * The `quantile` (0 … 1) of the latencies (acknowledged − sent) of the transfers acknowledged in
   * `interval`; null if there were none.
   */
  latencyQuantileMs(interval: Interval, quantile: number): number | null {
    const entries = this.ordered();
    const latencies: number[] = [];
    for (let index = this.firstIndexFrom(interval.fromMs); index < entries.length; index++) {
      const entry = entries[index]!;
      if (entry.completedAtMs >= interval.toMs) break;
      latencies.push(entry.completedAtMs - entry.sentAtMs);
    }
    if (latencies.length === 0) return null;
    latencies.sort((a, b) => a - b);
    return latencies[Math.min(latencies.length - 1, Math.floor(quantile * latencies.length))]!;
  }

  /** The longest time within [fromMs, toMs] in which no transfer was acknowledged. */
  longestGapMs(interval: Interval): number {
    const entries = this.ordered();
    let previousMs = interval.fromMs;
    let longestMs = 0;
    for (let index = this.firstIndexFrom(interval.fromMs); index < entries.length; index++) {
      const atMs = entries[index]!.completedAtMs;
      if (atMs > interval.toMs) break;
      longestMs = Math.max(longestMs, atMs - previousMs);
      previousMs = atMs;
    }
    return Math.max(longestMs, interval.toMs - previousMs);
  }
}

/**
 * The bound on a primary fault's recovery: `viewChangeMs` for replacing the primary, plus the
 * median latency of the transfers acknowledged in the window before the fault. A transfer sent
 * at the fault's start could not have committed sooner than the load's own latency even without
 * the fault: a cluster that queues 768 closed-loop clients answers each in seconds, and that is
 * the load's doing, not the view change's.
 */
export function primaryRecoveryBoundMs(
  timeline: AckTimeline,
  startedAtMs: number,
  windowMs: number,
  viewChangeMs: number,
): number {
  const latencyBeforeMs = timeline.latencyQuantileMs(
    { fromMs: startedAtMs - windowMs, toMs: startedAtMs },
    0.5,
  );
  return Math.round(viewChangeMs + (latencyBeforeMs ?? 0));
}

export interface RecoveryMeasure {
  /** When the first transfer sent after the fault's start was acknowledged; null if none was. */
  recoveredAtMs: number | null;
  /** From the fault's start to `recoveredAtMs`. */
  recoveryFromStartMs: number | null;
  /** Transfers per second in the window before the start; null if that window was not clean. */
  txPerSecBefore: number | null;
  /** Transfers per second in the window from recovery on; null if not recovered or not clean. */
  txPerSecAfter: number | null;
}

export interface MeasureInput {
  timeline: AckTimeline;
  /** When the fault was injected. */
  startedAtMs: number;
  windowMs: number;
  /** While the load ran: windows outside it are not measured. */
  load: Interval;
  /** The other faults, from their start until the runner saw every client commit again. */
  others: readonly Interval[];
}

function overlaps(a: Interval, b: Interval): boolean {
  return a.fromMs < b.toMs && b.fromMs < a.toMs;
}

export function measureRecovery(input: MeasureInput): RecoveryMeasure {
  const clean = (window: Interval): boolean =>
    window.fromMs >= input.load.fromMs &&
    window.toMs <= input.load.toMs &&
    !input.others.some((other) => overlaps(window, other));
  const rate = (window: Interval): number | null =>
    clean(window) ? round((input.timeline.countIn(window) * 1_000) / input.windowMs) : null;
  const recoveredAtMs = input.timeline.firstCommitSentFrom(input.startedAtMs);
  return {
    recoveredAtMs,
    recoveryFromStartMs: recoveredAtMs === null ? null : Math.round(recoveredAtMs - input.startedAtMs),
    txPerSecBefore: rate({ fromMs: input.startedAtMs - input.windowMs, toMs: input.startedAtMs }),
    txPerSecAfter:
      recoveredAtMs === null ? null : rate({ fromMs: recoveredAtMs, toMs: recoveredAtMs + input.windowMs }),
  };
}

/**
 * What is wrong with a primary fault's recovery: not within `boundMs` of the start, or throughput
 * after it below THROUGHPUT_RECOVERED_FRACTION of the throughput before. Empty when it recovered.
 */
export function recoveryProblems(label: string, measure: RecoveryMeasure, boundMs: number): string[] {
  if (measure.recoveryFromStartMs === null)
    return [`${label}: no transfer sent after the fault's start committed within ${boundMs} ms`];
  const problems: string[] = [];
  if (measure.recoveryFromStartMs > boundMs) {
    problems.push(
      `${label}: the first transfer sent after the fault's start committed ${measure.recoveryFromStartMs} ms after it, over the bound of ${boundMs} ms`,
    );
  }
  if (measure.txPerSecBefore === null || measure.txPerSecAfter === null) {
    problems.push(
      `${label}: throughput before and after recovery could not be measured (another fault or the end of the load overlapped)`,
    );
  } else if (measure.txPerSecAfter < THROUGHPUT_RECOVERED_FRACTION * measure.txPerSecBefore) {
    problems.push(
      `${label}: ${measure.txPerSecAfter} tx/s after recovery, below ${THROUGHPUT_RECOVERED_FRACTION} of the ${measure.txPerSecBefore} tx/s before the fault`,
    );
  }
  return problems;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
