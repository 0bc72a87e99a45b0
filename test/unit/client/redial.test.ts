/**
 * A replica's client stream closes (the replica restarted) and then many accounts on one shared
 * connection send to it at once, as they all do when it becomes primary. The connection must dial
 * one new stream, not one per send: the replica takes at most CLIENT_STREAMS_PER_CONNECTION_MAX
 * streams per connection, and a connection that kept a refused stream as its current one reached
 * that primary only through the backups' relays (found by the chaos timeline: ~20 transfers/s in
 * the view of a primary that had been killed and restarted earlier).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { decodeClientToReplica, encodeClientFrame } from '../../../src/protocol/client-protocol.ts';
import type { ClientSession } from '../../../src/transport/index.ts';
import { CLIENT_STREAMS_PER_CONNECTION_MAX } from '../../../src/transport/replica-transport.ts';
import { handMadeReplicas } from './hand-made-replicas.ts';

const RESTARTED = 2;
const BURST = 2 * CLIENT_STREAMS_PER_CONNECTION_MAX;

let dir = '';
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

async function eventually(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

it('a burst of sends to a replica whose stream closed dials one stream, and that stream carries what follows', async () => {
  dir = await mkdtemp(join(tmpdir(), 'pbft-redial-'));
  /** Replica RESTARTED's sessions, and the status ids that reached it on each. */
  const sessions = new Map<string, { session: ClientSession; ids: number[] }>();
  const answer = (id: number, session: ClientSession, frame: Uint8Array): void => {
    if (id !== RESTARTED) return;
    const input = decodeClientToReplica(frame);
    if (input.type !== 'status') return;
    const known = sessions.get(session.id) ?? { session, ids: [] };
    known.ids.push(input.id);
    sessions.set(session.id, known);
  };
  const { connection, stop } = await handMadeReplicas('redial', dir, answer);
  try {
    const status = (id: number) => encodeClientFrame({ type: 'status', id });
    connection.sendTo(RESTARTED, status(0));
    await eventually('the first stream', () => sessions.size === 1);
    // The replica "restarts": it closes the stream.
    for (const { session } of sessions.values()) session.close();
    await eventually('the client to notice', () => connection.replicasConnected === 3);
    sessions.clear();

    for (let id = 1; id <= BURST; id++) connection.sendTo(RESTARTED, status(id));
    await eventually(
      'the burst',
      () => [...sessions.values()].reduce((n, s) => n + s.ids.length, 0) === BURST,
    );
    expect(sessions.size).toBe(1);

    // And the stream the connection kept is the live one: a later send arrives on it.
    connection.sendTo(RESTARTED, status(BURST + 1));
    await eventually('the probe after the burst', () =>
      [...sessions.values()].some((s) => s.ids.includes(BURST + 1)),
    );
  } finally {
    await stop();
  }
}, 30_000);
