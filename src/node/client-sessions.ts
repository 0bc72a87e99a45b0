/**
 * Which client sessions to answer for a client key: the few most recent sessions that presented
 * its validly signed requests, each of them. Not only the last: a liar that re-sends from its own
 * session every request it sees inside PRE-PREPAREs would otherwise take the replies, and every
 * request of the client would need a retry. To push the client's own session out, a liar must
 * keep `perClientMax` sessions presenting after each of the client's own sends.
 */
import { BoundedCache } from '../crypto/bounded-cache.ts';

/** What this table needs of a session. */
export interface AnswerableSession {
  readonly closed: boolean;
}

export class ClientSessions<Session extends AnswerableSession> {
  readonly #sessions: BoundedCache<string, Session[]>;
  readonly #perClientMax: number;

  /** `clientsMax` client keys (least recently used forgotten), `perClientMax` sessions each. */
  constructor(clientsMax: number, perClientMax: number) {
    this.#sessions = new BoundedCache(clientsMax);
    this.#perClientMax = perClientMax;
  }

  /** `session` presented a validly signed request of `clientHex`: it becomes the most recent. */
  bind(clientHex: string, session: Session): void {
    const sessions = (this.#sessions.get(clientHex) ?? []).filter(
      (known) => known !== session && !known.closed,
    );
    sessions.push(session);
    if (sessions.length > this.#perClientMax) sessions.shift();
    this.#sessions.set(clientHex, sessions);
  }

  /** The open sessions to answer `clientHex` on, oldest first. */
  of(clientHex: string): Session[] {
    return (this.#sessions.get(clientHex) ?? []).filter((session) => !session.closed);
  }
}
