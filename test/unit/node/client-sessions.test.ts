/**
 * Replies go to every session that presented the client's request (the few most recent), not to
 * the last one only: a liar re-sending the client's requests from its own session does not take
 * the replies away from the client.
 */
import { expect, it } from 'vitest';
import { ClientSessions } from '../../../src/node/client-sessions.ts';

class FakeSession {
  closed = false;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

const names = (sessions: FakeSession[]): string[] => sessions.map((session) => session.name);

it('a liar that re-presents a client’s request from its own sessions does not take the client’s replies', () => {
  const table = new ClientSessions<FakeSession>(100, 4);
  const client = new FakeSession('client');
  table.bind('alice', client);
  // The liar presents every request it sees, from three sessions of its own, after the client.
  const liars = [1, 2, 3].map((index) => new FakeSession(`liar-${index}`));
  for (const liar of liars) table.bind('alice', liar);
  expect(names(table.of('alice'))).toEqual(['client', 'liar-1', 'liar-2', 'liar-3']);
  // The bound: a fourth liar session pushes the oldest out, until the client presents again
  // (its retry), which makes it the most recent.
  table.bind('alice', new FakeSession('liar-4'));
  expect(names(table.of('alice'))).not.toContain('client');
  table.bind('alice', client);
  expect(names(table.of('alice')).at(-1)).toBe('client');
  expect(table.of('alice')).toHaveLength(4);
  // Another client's sessions are its own.
  expect(table.of('bob')).toEqual([]);
});

it('a session presenting again is not counted twice, and closed sessions are not answered', () => {
  const table = new ClientSessions<FakeSession>(100, 4);
  const first = new FakeSession('first');
  const second = new FakeSession('second');
  table.bind('alice', first);
  table.bind('alice', second);
  table.bind('alice', first);
  expect(names(table.of('alice'))).toEqual(['second', 'first']);
  second.closed = true;
  expect(names(table.of('alice'))).toEqual(['first']);
});

it('remembers a bounded number of client keys, least recently used forgotten', () => {
  const table = new ClientSessions<FakeSession>(2, 4);
  table.bind('a', new FakeSession('a'));
  table.bind('b', new FakeSession('b'));
  table.of('a');
  table.bind('c', new FakeSession('c'));
  expect(table.of('b')).toEqual([]);
  expect(names(table.of('a'))).toEqual(['a']);
  expect(names(table.of('c'))).toEqual(['c']);
});
