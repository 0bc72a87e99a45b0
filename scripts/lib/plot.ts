/**
 * A timeline of a run as an SVG picture: committed transfers per second above p99 latency, on one
 * time axis, with intervals shaded and labelled (the chaos runner's faults, the benchmark's attack
 * phase) and a dashed vertical line where a new view settled. `npm run chaos -- --plot FILE` and
 * `npm run bench -- --plot FILE` write one.
 *
 * Written by hand rather than with a charting package: the picture is two line panels, a few
 * rectangles and text, about 250 lines of string building. The packages that could draw it either
 * need a DOM in Node (@observablehq/plot, d3's selections: jsdom), are large for two panels
 * (echarts' SVG renderer, vega and its dependency tree), or draw only to a canvas or the browser
 * (chart.js, uplot); d3-scale would give the ticks, which are twenty lines below. So: no
 * dependency, no native code, and an output whose elements a test can count.
 *
 * Pure: `renderTimelineSvg` returns the text; `writeSvgFile` is the only I/O.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { TimelinePoint } from './plot-series.ts';

/** A stretch of the run to shade: a fault, or an attack phase. */
export interface PlotInterval {
  fromS: number;
  toS: number;
  /** Shown above the panels, e.g. "#3 primary-kill r1". */
  label: string;
  /** Intervals of one kind share a colour (e.g. the fault class). */
  kind: string;
}

/** A moment to mark with a vertical line across both panels, e.g. "v2" when view 2 settled. */
export interface PlotMarker {
  atS: number;
  label: string;
}

export interface TimelinePlot {
  title: string;
  /** A second line under the title: the run's settings. */
  subtitle?: string;
  /** The width of each point's bucket, in seconds (points are drawn at their middles). */
  bucketS: number;
  points: readonly TimelinePoint[];
  intervals: readonly PlotInterval[];
  markers: readonly PlotMarker[];
  /** The time axis runs at least this long (else to the last point or interval). */
  durationS?: number;
  /** Under the time axis; default "seconds since the load started". */
  timeAxisTitle?: string;
  /** What the legend calls a shaded interval and a marker. */
  legend?: { interval: string; marker: string };
}

const WIDTH = 1_000;
const MARGIN_LEFT = 76;
const MARGIN_RIGHT = 24;
const HEADER_HEIGHT = 52;
const LANE_HEIGHT = 15;
/** Between the last label row (or the subtitle) and the top of the panels. */
const LANES_BOTTOM_GAP = 10;
/** Interval labels use at most this many rows; beyond it they overlap in the least crowded row. */
const LANES_MAX = 10;
const PANEL_HEIGHT = 180;
const PANEL_GAP = 28;
const FOOTER_HEIGHT = 62;
/** Ticks aimed for on each axis (the step is rounded to 1, 2 or 5 × 10^k). */
const X_TICKS = 12;
const Y_TICKS = 5;
const FONT_SIZE = 11;
/** Rough width of one character at FONT_SIZE in a sans-serif font, to keep labels apart. */
const CHAR_WIDTH = 6.3;
const LABEL_PADDING = 8;
const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
/** One colour per interval kind, in order of first appearance (none is a series' colour). */
const PALETTE = [
  '#e6550d',
  '#756bb1',
  '#31a354',
  '#17becf',
  '#e377c2',
  '#8c6d31',
  '#bcbd22',
  '#f0a30a',
  '#6baed6',
  '#7f7f7f',
];
const SHADE_OPACITY = 0.16;
const THROUGHPUT_COLOUR = '#1d3557';
const LATENCY_COLOUR = '#b03a2e';
const MARKER_COLOUR = '#222';

/** A linear map from a domain to pixels. */
interface Scale {
  (value: number): number;
  ticks: number[];
  step: number;
}

function niceStep(span: number, count: number): number {
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalised = raw / magnitude;
  const factor = normalised < 1.5 ? 1 : normalised < 3 ? 2 : normalised < 7 ? 5 : 10;
  return factor * magnitude;
}

/** From 0 to a round number at or above `max`; pixels from `fromPx` (at 0) to `toPx`. */
function linearScale(max: number, fromPx: number, toPx: number, tickCount: number): Scale {
  const step = niceStep(max > 0 ? max : 1, tickCount);
  const top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const scale = ((value: number) => fromPx + ((toPx - fromPx) * value) / top) as Scale;
  scale.step = step;
  scale.ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, index) => index * step);
  return scale;
}

function formatTick(value: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return value.toLocaleString('en-US', { maximumFractionDigits: decimals, minimumFractionDigits: decimals });
}

function escapeXml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;');
}

function px(value: number): string {
  return String(Math.round(value * 10) / 10);
}

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${px(x)}" y="${px(y)}"${attributes === '' ? '' : ` ${attributes}`}>${escapeXml(content)}</text>`;
}

interface PlacedLabel {
  interval: PlotInterval;
  colour: string;
  lane: number;
  /** Where the label's text starts. */
  x: number;
}

/** Each label in the first row where it does not run into the one before it. */
function placeLabels(intervals: readonly PlotInterval[], x: Scale, colourOf: (kind: string) => string) {
  const laneEnds: number[] = [];
  const placed: PlacedLabel[] = [];
  const rightPx = WIDTH - MARGIN_RIGHT;
  for (const interval of [...intervals].sort((a, b) => a.fromS - b.fromS)) {
    const widthPx = interval.label.length * CHAR_WIDTH;
    const start = Math.max(MARGIN_LEFT, Math.min(x(interval.fromS), rightPx - widthPx));
    let lane = laneEnds.findIndex((end) => end + LABEL_PADDING <= start);
    if (lane === -1) {
      if (laneEnds.length < LANES_MAX) lane = laneEnds.length;
      else lane = laneEnds.indexOf(Math.min(...laneEnds));
    }
    laneEnds[lane] = start + widthPx;
    placed.push({ interval, colour: colourOf(interval.kind), lane, x: start });
  }
  return { placed, lanes: laneEnds.length };
}

interface Panel {
  name: string;
  title: string;
  top: number;
  y: Scale;
}

function panelFrame(panel: Panel, x: Scale, showTimeLabels: boolean): string[] {
  const bottom = panel.top + PANEL_HEIGHT;
  const right = WIDTH - MARGIN_RIGHT;
  const parts: string[] = [];
  for (const tick of panel.y.ticks) {
    const y = panel.y(tick);
    parts.push(
      `<line class="grid" x1="${MARGIN_LEFT}" y1="${px(y)}" x2="${right}" y2="${px(y)}" stroke="#e5e5e5"/>`,
      `<line x1="${MARGIN_LEFT - 4}" y1="${px(y)}" x2="${MARGIN_LEFT}" y2="${px(y)}" stroke="#444"/>`,
      text(MARGIN_LEFT - 7, y + 4, formatTick(tick, panel.y.step), 'class="tick" text-anchor="end"'),
    );
  }
  for (const tick of x.ticks) {
    const at = x(tick);
    parts.push(`<line x1="${px(at)}" y1="${bottom}" x2="${px(at)}" y2="${bottom + 4}" stroke="#444"/>`);
    if (showTimeLabels)
      parts.push(text(at, bottom + 16, formatTick(tick, x.step), 'class="tick" text-anchor="middle"'));
  }
  const middle = panel.top + PANEL_HEIGHT / 2;
  parts.push(
    `<path class="axes" d="M${MARGIN_LEFT},${panel.top} V${bottom} H${right}" fill="none" stroke="#444"/>`,
    text(
      18,
      middle,
      panel.title,
      `class="axis-title" text-anchor="middle" transform="rotate(-90 18 ${px(middle)})"`,
    ),
  );
  return parts;
}

function throughputPath(plot: TimelinePlot, x: Scale, y: Scale): string[] {
  if (plot.points.length === 0) return [];
  const line = plot.points.map((point) => `${px(x(point.atS + plot.bucketS / 2))},${px(y(point.txPerSec))}`);
  const firstX = px(x(plot.points[0]!.atS + plot.bucketS / 2));
  const lastX = px(x(plot.points.at(-1)!.atS + plot.bucketS / 2));
  const base = px(y(0));
  return [
    `<path class="series-area" d="M${firstX},${base} L${line.join(' L')} L${lastX},${base} Z" fill="${THROUGHPUT_COLOUR}" fill-opacity="0.08"/>`,
    `<polyline class="series" data-series="throughput" points="${line.join(' ')}" fill="none" stroke="${THROUGHPUT_COLOUR}" stroke-width="1.6"/>`,
  ];
}

/** p99 as lines through consecutive buckets that have one; a lone bucket is a dot. */
function latencyPath(plot: TimelinePlot, x: Scale, y: Scale): string[] {
  const runs: string[][] = [[]];
  for (const point of plot.points) {
    if (point.p99Ms === null) {
      if (runs.at(-1)!.length > 0) runs.push([]);
      continue;
    }
    runs.at(-1)!.push(`${px(x(point.atS + plot.bucketS / 2))},${px(y(point.p99Ms))}`);
  }
  return runs
    .filter((run) => run.length > 0)
    .map((run) => {
      if (run.length > 1)
        return `<polyline class="series" data-series="latency" points="${run.join(' ')}" fill="none" stroke="${LATENCY_COLOUR}" stroke-width="1.6"/>`;
      const [cx, cy] = run[0]!.split(',');
      return `<circle class="series" data-series="latency" cx="${cx}" cy="${cy}" r="2" fill="${LATENCY_COLOUR}"/>`;
    });
}

/** The swatch for shaded intervals (only when there are some), and the marker line. */
function legend(plot: TimelinePlot, y: number): string[] {
  const words = plot.legend ?? { interval: 'fault', marker: 'view change' };
  const x = MARGIN_LEFT;
  const shaded = plot.intervals.length > 0;
  const markerX = shaded ? x + 40 + words.interval.length * CHAR_WIDTH + 24 : x;
  return [
    ...(shaded
      ? [
          `<rect x="${x}" y="${y - 9}" width="28" height="11" fill="${PALETTE[0]}" fill-opacity="${SHADE_OPACITY * 2}"/>`,
          text(x + 34, y, words.interval, 'class="legend"'),
        ]
      : []),
    `<line x1="${px(markerX)}" y1="${y - 10}" x2="${px(markerX)}" y2="${y + 2}" stroke="${MARKER_COLOUR}" stroke-dasharray="4 3"/>`,
    text(markerX + 6, y, words.marker, 'class="legend"'),
  ];
}

export function renderTimelineSvg(plot: TimelinePlot): string {
  const lastPointS = plot.points.length === 0 ? 0 : plot.points.at(-1)!.atS + plot.bucketS;
  const durationS = Math.max(
    plot.durationS ?? 0,
    lastPointS,
    ...plot.intervals.map((interval) => interval.toS),
    ...plot.markers.map((marker) => marker.atS),
    1,
  );
  const x = linearScale(durationS, MARGIN_LEFT, WIDTH - MARGIN_RIGHT, X_TICKS);
  const kinds: string[] = [];
  const colourOf = (kind: string): string => {
    if (!kinds.includes(kind)) kinds.push(kind);
    return PALETTE[kinds.indexOf(kind) % PALETTE.length]!;
  };
  const { placed, lanes } = placeLabels(plot.intervals, x, colourOf);
  const lanesTop = HEADER_HEIGHT;
  const plotTop = lanesTop + lanes * LANE_HEIGHT + LANES_BOTTOM_GAP;
  const throughput: Panel = {
    name: 'throughput',
    title: 'committed transfers/s',
    top: plotTop,
    y: linearScale(
      Math.max(0, ...plot.points.map((point) => point.txPerSec)),
      plotTop + PANEL_HEIGHT,
      plotTop,
      Y_TICKS,
    ),
  };
  const latencyTop = plotTop + PANEL_HEIGHT + PANEL_GAP;
  const latency: Panel = {
    name: 'latency',
    title: 'p99 latency (ms)',
    top: latencyTop,
    y: linearScale(
      Math.max(0, ...plot.points.map((point) => point.p99Ms ?? 0)),
      latencyTop + PANEL_HEIGHT,
      latencyTop,
      Y_TICKS,
    ),
  };
  const plotBottom = latencyTop + PANEL_HEIGHT;
  const height = plotBottom + FOOTER_HEIGHT;

  const shading = placed.map(({ interval, colour }) => {
    const from = x(interval.fromS);
    const widthPx = Math.max(1, x(interval.toS) - from);
    return (
      `<rect class="fault" data-kind="${escapeXml(interval.kind)}" x="${px(from)}" y="${plotTop}" width="${px(widthPx)}" height="${plotBottom - plotTop}" fill="${colour}" fill-opacity="${SHADE_OPACITY}">` +
      `<title>${escapeXml(`${interval.label}: ${interval.fromS.toFixed(1)} s to ${interval.toS.toFixed(1)} s`)}</title></rect>`
    );
  });
  const labels = placed.flatMap(({ interval, colour, lane, x: labelX }) => {
    const baseline = lanesTop + lane * LANE_HEIGHT + FONT_SIZE;
    const from = x(interval.fromS);
    return [
      `<line class="fault-leader" x1="${px(from)}" y1="${baseline + 2}" x2="${px(from)}" y2="${plotTop}" stroke="${colour}" stroke-dasharray="1 2"/>`,
      `<rect x="${px(from)}" y="${baseline + 1}" width="${px(Math.max(2, x(interval.toS) - from))}" height="2.5" fill="${colour}"/>`,
      text(labelX, baseline - 1, interval.label, `class="fault-label" fill="${colour}"`),
    ];
  });
  let previousMarkerX = -Infinity;
  let stagger = 0;
  const markers = [...plot.markers]
    .sort((a, b) => a.atS - b.atS)
    .flatMap((marker) => {
      const at = x(marker.atS);
      stagger = at - previousMarkerX < marker.label.length * CHAR_WIDTH + 6 ? (stagger + 1) % 3 : 0;
      previousMarkerX = at;
      return [
        `<line class="view-change" x1="${px(at)}" y1="${plotTop}" x2="${px(at)}" y2="${plotBottom}" stroke="${MARKER_COLOUR}" stroke-width="1" stroke-dasharray="4 3"/>`,
        text(at + 3, plotTop + 12 + stagger * FONT_SIZE, marker.label, 'class="view-label"'),
      ];
    });

  const header = [
    text(MARGIN_LEFT, 22, plot.title, 'class="title"'),
    ...(plot.subtitle === undefined ? [] : [text(MARGIN_LEFT, 40, plot.subtitle, 'class="subtitle"')]),
  ];
  const timeTitle = text(
    (MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2,
    plotBottom + 34,
    plot.timeAxisTitle ?? 'seconds since the load started',
    'class="axis-title" text-anchor="middle"',
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${FONT}" font-size="${FONT_SIZE}">`,
    '<style>.title{font-size:15px;font-weight:600}.subtitle{fill:#555}.tick{fill:#444}.axis-title{font-size:12px;fill:#222}.fault-label{font-size:11px}.view-label{font-size:10px;fill:#222}.legend{fill:#444}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...header,
    `<g class="intervals">${shading.join('')}</g>`,
    `<g class="panel" data-panel="${throughput.name}">${[...panelFrame(throughput, x, false), ...throughputPath(plot, x, throughput.y)].join('')}</g>`,
    `<g class="panel" data-panel="${latency.name}">${[...panelFrame(latency, x, true), ...latencyPath(plot, x, latency.y)].join('')}</g>`,
    `<g class="interval-labels">${labels.join('')}</g>`,
    `<g class="markers">${markers.join('')}</g>`,
    timeTitle,
    ...legend(plot, plotBottom + 54),
    '</svg>',
    '',
  ].join('\n');
}

/** Write `svg` to `file`, creating its folder. */
export async function writeSvgFile(file: string, svg: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, svg);
}
