/**
 * What the timeline plots (plot.ts) show, from what the scripts already record: per-second
 * throughput and p99 latency from the acknowledged transfers (an AckTimeline, as the chaos runner
 * keeps it), and the moments a new view settled from polled view readings (the replicas' status,
 * or their /metrics in the benchmark).
 */
import type { AckTimeline, Interval } from './chaos-recovery.ts';

/** The quantile the latency panel shows. */
export const LATENCY_QUANTILE = 0.99;
/** A last bucket shorter than this share of a bucket is left out: its rate would be noise. */
const PARTIAL_BUCKET_MIN_FRACTION = 0.5;

/** One bucket of the load: transfers acknowledged in [atS, atS + bucket), and their p99 latency. */
export interface TimelinePoint {
  /** Seconds from the origin of the plot to the bucket's start. */
  atS: number;
  txPerSec: number;
  /** Null when nothing was acknowledged in the bucket. */
  p99Ms: number | null;
}

/**
 * Buckets of `bucketMs` over `span`, by acknowledgement time, timed from `span.fromMs`. Rates are
 * per second of the bucket's own length (the last one may be shorter).
 */
export function perSecondSeries(timeline: AckTimeline, span: Interval, bucketMs = 1_000): TimelinePoint[] {
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs must be positive, got ${bucketMs}`);
  const points: TimelinePoint[] = [];
  for (let fromMs = span.fromMs; fromMs < span.toMs; fromMs += bucketMs) {
    const toMs = Math.min(span.toMs, fromMs + bucketMs);
    if (toMs - fromMs < PARTIAL_BUCKET_MIN_FRACTION * bucketMs && points.length > 0) break;
    const bucket = { fromMs, toMs };
    points.push({
      atS: (fromMs - span.fromMs) / 1_000,
      txPerSec: round((timeline.countIn(bucket) * 1_000) / (toMs - fromMs)),
      p99Ms: roundOrNull(timeline.latencyQuantileMs(bucket, LATENCY_QUANTILE)),
    });
  }
  return points;
}

/** What a replica says about its view; null when it did not answer. */
export interface ViewState {
  view: number;
  viewChangeInProgress: boolean;
}

export interface ViewPoll {
  /** When the readings were in, on the clock of the series' origin. */
  atMs: number;
  replicas: ReadonlyArray<ViewState | null>;
}

/** A view that 2f+1 replicas were in, not changing views, from `atMs` on. */
export interface SettledView {
  atMs: number;
  view: number;
}

/**
 * Each time a higher view settled: the first poll in which `quorum` replicas (not counting
 * `exclude`, e.g. a liar) were in it and not changing views. A replica that changes views alone
 * (paused, cut off) does not make a view settle; the view of the first settled poll is the
 * starting view, not a change.
 */
export function settledViewChanges(
  polls: readonly ViewPoll[],
  quorum: number,
  exclude: readonly number[] = [],
): SettledView[] {
  const changes: SettledView[] = [];
  let current: number | null = null;
  for (const poll of polls) {
    const counts = new Map<number, number>();
    for (const [id, state] of poll.replicas.entries()) {
      if (state === null || state.viewChangeInProgress || exclude.includes(id)) continue;
      counts.set(state.view, (counts.get(state.view) ?? 0) + 1);
    }
    const settled = [...counts].filter(([, count]) => count >= quorum).map(([view]) => view);
    if (settled.length === 0) continue;
    const view = Math.max(...settled);
    if (current !== null && view > current) changes.push({ atMs: poll.atMs, view });
    if (current === null || view > current) current = view;
  }
  return changes;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value);
}
