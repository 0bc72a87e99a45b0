/**
 * The timeline picture of `npm run chaos -- --plot` and `npm run bench -- --plot`
 * (scripts/lib/plot.ts, scripts/lib/plot-series.ts): the series it draws from acknowledged
 * transfers and polled views, and the SVG itself: two panels, a shaded and labelled interval per
 * fault, a line per view change.
 */
import { describe, expect, it } from 'vitest';
import { AckTimeline } from '../../../scripts/lib/chaos-recovery.ts';
import { parseSvgPath } from '../../../scripts/lib/options.ts';
import { type PlotInterval, renderTimelineSvg, type TimelinePlot } from '../../../scripts/lib/plot.ts';
import {
  perSecondSeries,
  settledViewChanges,
  type TimelinePoint,
  type ViewPoll,
} from '../../../scripts/lib/plot-series.ts';

/** Every `<tag …>` with `class="cls"`, as attribute maps (the text content, if any, under `text`). */
function elements(svg: string, tag: string, cls: string): Array<Record<string, string>> {
  const found: Array<Record<string, string>> = [];
  const pattern = new RegExp(`<${tag}\\s([^>]*?)/?>(?:([^<]*)</${tag}>)?`, 'g');
  for (const match of svg.matchAll(pattern)) {
    const attributes = Object.fromEntries(
      [...match[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((attribute) => [attribute[1]!, attribute[2]!]),
    );
    if (attributes['class'] !== cls) continue;
    found.push({ ...attributes, ...(match[2] === undefined ? {} : { text: match[2] }) });
  }
  return found;
}

/** 60 s of load at about 400 tx/s, nothing committed in 20–23 s and latency high around it. */
function syntheticPoints(): TimelinePoint[] {
  return Array.from({ length: 60 }, (_, atS) => {
    const stalled = atS >= 20 && atS < 23;
    return {
      atS,
      txPerSec: stalled ? 0 : 400 + (atS % 7) * 10,
      p99Ms: stalled ? null : atS === 23 ? 2_900 : 80 + (atS % 5) * 5,
    };
  });
}

const FAULTS: PlotInterval[] = [
  { fromS: 8, toS: 11, label: '#0 kill r2', kind: 'kill' },
  { fromS: 19.5, toS: 22.5, label: '#1 primary-kill r0', kind: 'primary-kill' },
  // Starts before the previous label ends: its label goes in a row of its own.
  { fromS: 21, toS: 25, label: '#2 byzantine (equivocate) r3', kind: 'byzantine' },
  { fromS: 40, toS: 46, label: '#3 partition r1 & <clients>', kind: 'partition' },
];

function plot(overrides: Partial<TimelinePlot> = {}): TimelinePlot {
  return {
    title: 'chaos',
    subtitle: 'seed 1',
    bucketS: 1,
    points: syntheticPoints(),
    intervals: FAULTS,
    markers: [
      { atS: 22.4, label: 'v1' },
      { atS: 23.1, label: 'v2' },
      { atS: 44, label: 'v3' },
    ],
    durationS: 60,
    ...overrides,
  };
}

describe('renderTimelineSvg', () => {
  const svg = renderTimelineSvg(plot());

  it('draws a throughput panel above a latency panel, each with axes, ticks and a title', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    const panels = [...svg.matchAll(/<g class="panel" data-panel="(\w+)">(.*?)<\/g>/g)];
    expect(panels.map((panel) => panel[1])).toEqual(['throughput', 'latency']);
    for (const [, , body] of panels) {
      expect(body).toMatch(/class="axes"/);
      expect((body!.match(/class="tick"/g) ?? []).length).toBeGreaterThan(5);
    }
    expect(panels[0]![2]).toContain('committed transfers/s');
    expect(panels[1]![2]).toContain('p99 latency (ms)');
    // Time labels under the lower panel only: 0 … 60 s.
    expect(panels[0]![2]).not.toContain('>60</text>');
    expect(panels[1]![2]).toContain('>60</text>');
    expect(svg).toContain('seconds since the load started');
    // The throughput line has a point per second; the stall breaks the p99 line in two.
    const throughput = elements(svg, 'polyline', 'series').filter(
      (line) => line['data-series'] === 'throughput',
    );
    expect(throughput[0]!['points']!.split(' ')).toHaveLength(60);
    const latency = elements(svg, 'polyline', 'series').filter((line) => line['data-series'] === 'latency');
    expect(latency.map((line) => line['points']!.split(' ').length)).toEqual([20, 37]);
  });

  it('shades every fault across both panels and labels it with its kind and target', () => {
    const shaded = elements(svg, 'rect', 'fault');
    expect(shaded.map((rect) => rect['data-kind'])).toEqual([
      'kill',
      'primary-kill',
      'byzantine',
      'partition',
    ]);
    const labels = elements(svg, 'text', 'fault-label');
    expect(labels.map((label) => label['text'])).toEqual([
      '#0 kill r2',
      '#1 primary-kill r0',
      '#2 byzantine (equivocate) r3',
      '#3 partition r1 &amp; &lt;clients&gt;',
    ]);
    const leaders = elements(svg, 'line', 'fault-leader');
    for (const [index, rect] of shaded.entries()) {
      // Each label's leader starts where its shading does, and the shading is as wide as the fault.
      expect(leaders[index]!['x1']).toBe(rect['x']);
      expect(Number(rect['width'])).toBeGreaterThan(0);
      expect(labels[index]!['fill']).toBe(rect['fill']);
    }
    const widthPerS = Number(shaded[3]!['width']) / 6;
    expect(Number(shaded[0]!['width'])).toBeCloseTo(3 * widthPerS, 0);
    // Faults of different kinds differ in colour; overlapping labels sit in different rows.
    expect(new Set(shaded.map((rect) => rect['fill'])).size).toBe(4);
    expect(labels[2]!['y']).not.toBe(labels[1]!['y']);
    expect(labels[3]!['y']).toBe(labels[0]!['y']);
    // The panels start below the label rows.
    const top = Number(shaded[0]!['y']);
    for (const label of labels) expect(Number(label['y'])).toBeLessThan(top);
  });

  it('marks every view change with a vertical line across both panels and its view', () => {
    const lines = elements(svg, 'line', 'view-change');
    expect(lines).toHaveLength(3);
    const shade = elements(svg, 'rect', 'fault')[0]!;
    const [top, bottom] = [Number(shade['y']), Number(shade['y']) + Number(shade['height'])];
    for (const line of lines) {
      expect(line['x1']).toBe(line['x2']);
      expect([Number(line['y1']), Number(line['y2'])]).toEqual([top, bottom]);
    }
    expect(elements(svg, 'text', 'view-label').map((label) => label['text'])).toEqual(['v1', 'v2', 'v3']);
    // Two view changes close together: their labels do not sit on one another.
    const [v1, v2] = elements(svg, 'text', 'view-label');
    expect(v1!['y']).not.toBe(v2!['y']);
  });

  it('draws no shading and no markers when a run had neither', () => {
    const quiet = renderTimelineSvg(plot({ intervals: [], markers: [] }));
    expect(elements(quiet, 'rect', 'fault')).toHaveLength(0);
    expect(elements(quiet, 'line', 'view-change')).toHaveLength(0);
    expect([...quiet.matchAll(/<g class="panel"/g)]).toHaveLength(2);
  });

  it('draws an empty run without failing', () => {
    const empty = renderTimelineSvg(plot({ points: [], intervals: [], markers: [], durationS: 0 }));
    expect([...empty.matchAll(/<g class="panel"/g)]).toHaveLength(2);
    expect(empty).not.toContain('NaN');
  });
});

describe('perSecondSeries', () => {
  it('counts acknowledgements per second and takes the p99 of their latencies', () => {
    const timeline = new AckTimeline();
    // Second 0: 98 transfers of 10 ms and 2 of 500 ms; second 1: none; second 2: 50 of 20 ms.
    const completed = [
      ...Array.from({ length: 100 }, (_, index) => 1_000 + index * 9),
      ...Array.from({ length: 50 }, (_, index) => 3_000 + index * 10),
    ];
    const latencies = completed.map((atMs, index) =>
      index >= 98 && index < 100 ? 500 : atMs >= 3_000 ? 20 : 10,
    );
    timeline.add(
      completed.map((atMs, index) => atMs - latencies[index]!),
      completed,
    );
    const points = perSecondSeries(timeline, { fromMs: 1_000, toMs: 4_200 });
    expect(points.map((point) => point.atS)).toEqual([0, 1, 2]);
    expect(points.map((point) => point.txPerSec)).toEqual([100, 0, 50]);
    expect(points.map((point) => point.p99Ms)).toEqual([500, null, 20]);
  });

  it('rates a last, shorter bucket per second of its own length', () => {
    const timeline = new AckTimeline();
    timeline.add([0, 100, 1_100, 1_200], [10, 110, 1_110, 1_210]);
    const points = perSecondSeries(timeline, { fromMs: 0, toMs: 1_500 });
    expect(points.map((point) => point.txPerSec)).toEqual([2, 4]);
  });
});

describe('settledViewChanges', () => {
  const state = (view: number, viewChangeInProgress = false) => ({ view, viewChangeInProgress });
  const polls: ViewPoll[] = [
    { atMs: 0, replicas: [state(0), state(0), state(0), state(0)] },
    // Replica 3 is cut off and changes views alone: nothing settles in view 1 or 2.
    { atMs: 1_000, replicas: [state(0), state(0), state(0), state(2, true)] },
    // The primary dies; the others start changing views.
    { atMs: 2_000, replicas: [null, state(1, true), state(1, true), state(2)] },
    { atMs: 3_000, replicas: [null, state(2), state(2), state(2)] },
    { atMs: 4_000, replicas: [state(2), state(2), state(2), state(2)] },
    { atMs: 5_000, replicas: [state(4), state(4), state(4), state(2)] },
  ];

  it('marks each view that 2f+1 replicas settled in, not a lone replica’s views', () => {
    expect(settledViewChanges(polls, 3)).toEqual([
      { atMs: 3_000, view: 2 },
      { atMs: 5_000, view: 4 },
    ]);
  });

  it('does not count an excluded replica (a liar) towards the quorum', () => {
    // Without replica 3, view 2 settles only once replica 0 is back in it.
    expect(settledViewChanges(polls, 3, [3])).toEqual([
      { atMs: 4_000, view: 2 },
      { atMs: 5_000, view: 4 },
    ]);
  });
});

describe('parseSvgPath', () => {
  it('takes paths that end in .svg only', () => {
    expect(parseSvgPath('docs/images/chaos-timeline.svg')).toBe('docs/images/chaos-timeline.svg');
    expect(parseSvgPath('out.SVG')).toBe('out.SVG');
    expect(parseSvgPath('out.png')).toBeNull();
    expect(parseSvgPath('.svg')).toBeNull();
  });
});
