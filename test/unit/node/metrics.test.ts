/**
 * Metrics exist from the first scrape: a fresh replica's /metrics has every metric that
 * docs/operations.md documents, and every labelled counter has a series for every label value the
 * code can produce, at 0. Prometheus then answers `rate(pbft_view_changes_total[1m])` with 0 on a
 * healthy cluster, not with an empty vector that no alert rule can fire on or clear.
 */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { CODEC_ERROR_CODES } from '../../../src/codec/cbor.ts';
import {
  BUSY_WHERE,
  INVALID_MESSAGE_REASONS,
  ReplicaMetrics,
  SIGNATURE_THREADS,
} from '../../../src/node/metrics.ts';
import { MESSAGE_TYPES } from '../../../src/protocol/messages.ts';
import { CORE_REJECTION_REASONS, SIGNATURE_REJECTIONS } from '../../../src/protocol/rejections.ts';
import { VIEW_CHANGE_REASONS } from '../../../src/protocol/replica.ts';

const OPERATIONS = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');

/** Metric names in the operations guide's metrics table (rows that start with a `pbft_…` name). */
function documentedMetrics(): string[] {
  const names = new Set<string>();
  for (const line of OPERATIONS.split('\n')) {
    const first = /^\| (`pbft_[^|]*)\|/.exec(line)?.[1];
    if (first === undefined) continue;
    for (const match of first.matchAll(/`(pbft_[a-z_]+)(?:\{[a-z]+\})?`/g)) names.add(match[1]!);
  }
  return [...names];
}

/** Sample values of one labelled metric, by label value. */
function series(text: string, name: string, label: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const match of text.matchAll(new RegExp(`^${name}\\{${label}="([^"]+)"\\} (\\S+)$`, 'gm')))
    values.set(match[1]!, Number(match[2]));
  return values;
}

it('a fresh replica exposes every documented metric, and every label value of each counter at 0', async () => {
  const text = await new ReplicaMetrics().registry.metrics();
  const documented = documentedMetrics();
  expect(documented.length).toBeGreaterThanOrEqual(20);
  for (const name of documented) expect(text, name).toContain(`# TYPE ${name} `);
  // And nothing is exported that the guide does not explain.
  const exported = [...text.matchAll(/^# TYPE (pbft_[a-z_]+) /gm)].map((match) => match[1]!);
  expect(exported.filter((name) => !documented.includes(name))).toEqual([]);

  const labelled: Array<[string, string, readonly string[]]> = [
    ['pbft_view_changes_total', 'reason', VIEW_CHANGE_REASONS],
    ['pbft_messages_received_total', 'type', MESSAGE_TYPES],
    ['pbft_messages_sent_total', 'type', MESSAGE_TYPES],
    ['pbft_invalid_messages_total', 'reason', INVALID_MESSAGE_REASONS],
    ['pbft_signatures_verified_total', 'thread', SIGNATURE_THREADS],
    ['pbft_requests_busy_total', 'where', BUSY_WHERE],
  ];
  for (const [name, label, values] of labelled) {
    const found = series(text, name, label);
    expect([...found.keys()].sort(), name).toEqual([...values].sort());
    for (const [value, count] of found) expect(count, `${name}{${label}="${value}"}`).toBe(0);
  }
  // The reasons an operator's alert names are among them.
  for (const reason of ['bad-signature', 'digest-mismatch', 'wrong-pre-prepares', 'conflicting-pre-prepare'])
    expect(INVALID_MESSAGE_REASONS).toContain(reason);
  for (const reason of [...CODEC_ERROR_CODES, ...SIGNATURE_REJECTIONS, ...CORE_REJECTION_REASONS])
    expect(INVALID_MESSAGE_REASONS).toContain(reason);
  // The documented view-change reasons are the ones the code has.
  expect(OPERATIONS).toContain(`\`reason\` = ${VIEW_CHANGE_REASONS.join(', ')}`);
});
