/** Recovery after a fault, measured from what the load clients saw: from the start, in clean windows. */
import { describe, expect, it } from 'vitest';
import {
  AckTimeline,
  measureRecovery,
  primaryRecoveryBoundMs,
  recoveryProblems,
  THROUGHPUT_RECOVERED_FRACTION,
} from '../../../scripts/lib/chaos-recovery.ts';

const WINDOW_MS = 10_000;
const FAULT_AT_MS = 20_000;
/** Every transfer takes this long from send to acknowledgement in steady state. */
const LATENCY_MS = 40;

/** Acknowledgements every `everyMs` from `fromMs` until before `toMs`, each sent LATENCY_MS earlier. */
function steady(timeline: AckTimeline, fromMs: number, toMs: number, everyMs: number): void {
  const completed: number[] = [];
  for (let atMs = fromMs; atMs < toMs; atMs += everyMs) completed.push(atMs);
  timeline.add(
    completed.map((atMs) => atMs - LATENCY_MS),
    completed,
  );
}

/**
 * 100 tx/s until the primary dies at FAULT_AT_MS; the transfers already in flight commit within
 * the next 30 ms (the backups hold their PRE-PREPAREs); then nothing until the new view commits
 * the transfers sent after the fault, `recoveryMs` after it, and `afterEveryMs` apart from then on.
 */
function primaryDies(recoveryMs: number, afterEveryMs: number): AckTimeline {
  const timeline = new AckTimeline();
  steady(timeline, 0, FAULT_AT_MS, 10);
  timeline.add([FAULT_AT_MS - 20, FAULT_AT_MS - 10], [FAULT_AT_MS + 10, FAULT_AT_MS + 30]);
  const recoveredAtMs = FAULT_AT_MS + recoveryMs;
  timeline.add([FAULT_AT_MS + 10, FAULT_AT_MS + 30], [recoveredAtMs, recoveredAtMs + 1]);
  steady(timeline, recoveredAtMs + afterEveryMs, recoveredAtMs + 3 * WINDOW_MS, afterEveryMs);
  return timeline;
}

const LOAD = { fromMs: 0, toMs: 200_000 };

describe('chaos recovery measurement', () => {
  it('counts from the fault start to the first commit of a transfer sent after it, not of one in flight', () => {
    const measure = measureRecovery({
      timeline: primaryDies(3_500, 10),
      startedAtMs: FAULT_AT_MS,
      windowMs: WINDOW_MS,
      load: LOAD,
      others: [],
    });
    expect(measure.recoveredAtMs).toBe(FAULT_AT_MS + 3_500);
    expect(measure.recoveryFromStartMs).toBe(3_500);
  });

  it('compares throughput in the window before the start with the window from recovery on', () => {
    const measure = measureRecovery({
      timeline: primaryDies(3_500, 20),
      startedAtMs: FAULT_AT_MS,
      windowMs: WINDOW_MS,
      load: LOAD,
      others: [],
    });
    expect(measure.txPerSecBefore).toBe(100);
    // The two recovery commits plus one every 20 ms for the rest of the window.
    expect(measure.txPerSecAfter).toBe(50.1);
    expect(recoveryProblems('fault #0', measure, 6_000)).toEqual([]);
  });

  it('reports a recovery over the bound, and throughput that did not come back to half', () => {
    const slow = measureRecovery({
      timeline: primaryDies(7_000, 10),
      startedAtMs: FAULT_AT_MS,
      windowMs: WINDOW_MS,
      load: LOAD,
      others: [],
    });
    expect(recoveryProblems('fault #0', slow, 6_000)).toEqual([
      "fault #0: the first transfer sent after the fault's start committed 7000 ms after it, over the bound of 6000 ms",
    ]);
    // One batch per view: a few commits, then another stall, again and again.
    const crawling = measureRecovery({
      timeline: primaryDies(3_000, 50),
      startedAtMs: FAULT_AT_MS,
      windowMs: WINDOW_MS,
      load: LOAD,
      others: [],
    });
    expect(crawling.txPerSecAfter).toBeLessThan(THROUGHPUT_RECOVERED_FRACTION * crawling.txPerSecBefore!);
    expect(recoveryProblems('fault #0', crawling, 6_000)).toEqual([
      `fault #0: ${crawling.txPerSecAfter} tx/s after recovery, below 0.5 of the 100 tx/s before the fault`,
    ]);
  });

  it('reports no recovery when nothing sent after the start committed', () => {
    const timeline = new AckTimeline();
    steady(timeline, 0, FAULT_AT_MS, 10);
    timeline.add([FAULT_AT_MS - 5], [FAULT_AT_MS + 5]);
    const measure = measureRecovery({
      timeline,
      startedAtMs: FAULT_AT_MS,
      windowMs: WINDOW_MS,
      load: LOAD,
      others: [],
    });
    expect(measure).toMatchObject({ recoveredAtMs: null, recoveryFromStartMs: null, txPerSecAfter: null });
    expect(recoveryProblems('fault #0', measure, 6_000)).toEqual([
      "fault #0: no transfer sent after the fault's start committed within 6000 ms",
    ]);
  });

  it('measures no throughput in a window that another fault or the end of the load overlaps', () => {
    const timeline = primaryDies(3_000, 10);
    const input = { timeline, startedAtMs: FAULT_AT_MS, windowMs: WINDOW_MS, load: LOAD };
    const before = measureRecovery({ ...input, others: [{ fromMs: 9_000, toMs: 12_000 }] });
    expect(before.txPerSecBefore).toBeNull();
    // The two recovery commits plus one every 10 ms for the rest of the window.
    expect(before.txPerSecAfter).toBe(100.1);
    const after = measureRecovery({ ...input, others: [{ fromMs: 30_000, toMs: 31_000 }] });
    expect(after.txPerSecBefore).toBe(100);
    expect(after.txPerSecAfter).toBeNull();
    expect(recoveryProblems('fault #0', after, 6_000)).toEqual([
      'fault #0: throughput before and after recovery could not be measured (another fault or the end of the load overlapped)',
    ]);
    const ended = measureRecovery({ ...input, others: [], load: { fromMs: 0, toMs: 25_000 } });
    expect(ended.txPerSecAfter).toBeNull();
    const lateStart = measureRecovery({ ...input, others: [], load: { fromMs: 15_000, toMs: 200_000 } });
    expect(lateStart.txPerSecBefore).toBeNull();
  });

  it('finds the longest stall, edges included, whatever order acknowledgements arrive in', () => {
    const timeline = new AckTimeline();
    timeline.add([0, 0, 0], [500, 100, 300]);
    expect(timeline.size).toBe(3);
    expect(timeline.countIn({ fromMs: 100, toMs: 500 })).toBe(2);
    expect(timeline.longestGapMs({ fromMs: 0, toMs: 2_000 })).toBe(1_500);
    expect(timeline.longestGapMs({ fromMs: 0, toMs: 600 })).toBe(200);
    expect(timeline.firstCommitSentFrom(1)).toBeNull();
  });

  it("bounds a primary fault's recovery by the view change plus the median latency before it", () => {
    const timeline = new AckTimeline();
    // Before the fault: latencies 1 s, 2 s, 3 s, 4 s, 5 s (median 3 s); one after it (not counted).
    timeline.add([9_000, 9_000, 9_000, 9_000, 9_000], [10_000, 11_000, 12_000, 13_000, 14_000]);
    timeline.add([14_000], [30_000]);
    expect(timeline.latencyQuantileMs({ fromMs: 0, toMs: 20_000 }, 0.5)).toBe(3_000);
    expect(timeline.latencyQuantileMs({ fromMs: 0, toMs: 20_000 }, 1)).toBe(5_000);
    expect(timeline.latencyQuantileMs({ fromMs: 11_000, toMs: 13_000 }, 0.5)).toBe(3_000);
    expect(timeline.latencyQuantileMs({ fromMs: 15_000, toMs: 20_000 }, 0.5)).toBeNull();
    expect(primaryRecoveryBoundMs(timeline, 20_000, 10_000, 6_000)).toBe(9_000);
    // With nothing acknowledged before the fault, the bound is the view change's alone.
    expect(primaryRecoveryBoundMs(timeline, 50_000, 10_000, 6_000)).toBe(6_000);
  });
});
