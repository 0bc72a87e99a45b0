/**
 * Byzantine behaviours: ways a replica can lie. Each wraps an honest core and rewrites what it sends
 * to replicas (per destination, so it can equivocate) and to clients (replies and query answers),
 * or adds traffic of its own. The simulator runs them, and real replicas run them under
 * `--byzantine` on a testnet. Deterministic given the random source.
 */
import { createSigner } from '../crypto/index.ts';
import type { Sha256 } from '../crypto/types.ts';
import { decodeResult, encodeResult, type OperationResult } from '../ledger/operations.ts';
import { batchDigest } from '../protocol/certificates.ts';
import type { QueryResultFrame } from '../protocol/client-protocol.ts';
import { DEFAULT_PROTOCOL_CONFIG, type ProtocolConfig, primaryOf } from '../protocol/config.ts';
import {
  type Body,
  type CheckpointBody,
  type CommitBody,
  DIGEST_BYTES,
  type Message,
  type NewViewBody,
  OPERATION_SIZE_MAX_BYTES,
  type PrePrepareBody,
  type PrepareBody,
  type ReplicaId,
  type ReplyBody,
  type RequestBody,
  requestWireBytes,
  type Signed,
  signBody,
  type ViewChangeBody,
} from '../protocol/messages.ts';
import { bytesEqual, concatBytes, toHex, utf8 } from '../util/bytes.ts';

export const BYZANTINE_BEHAVIOURS = [
  'silent',
  'equivocate',
  'bad-digest',
  'bad-signature',
  'replay',
  'unprepared-votes',
  'fake-checkpoint',
  'fake-view-change',
  'bad-new-view',
  'flood',
  'wrong-batches',
  'forged-replies',
  'forged-reads',
  'censor',
  'empty-batches',
  'big-batches',
  'flood-future-views',
  'selective-commit',
  'slow-primary',
] as const;

export type ByzantineBehaviour = (typeof BYZANTINE_BEHAVIOURS)[number];

export function isByzantineBehaviour(name: string): name is ByzantineBehaviour {
  return (BYZANTINE_BEHAVIOURS as readonly string[]).includes(name);
}

/** The randomness a strategy needs; the simulator's seeded generator provides it. */
export interface ByzantineRandom {
  int(from: number, to: number): number;
  chance(probability: number): boolean;
  bytes(length: number): Uint8Array;
}

/** What a strategy may know and do: its own key, and what its honest core currently believes. */
export interface ByzantineContext {
  id: ReplicaId;
  replicaCount: number;
  view: number;
  lowWatermark: number;
  watermarkWindow: number;
  checkpointInterval: number;
  /**
   * The batch bounds every backup enforces: a liar that keeps to them is not refused for size.
   * Absent (a context made by hand in a test), DEFAULT_PROTOCOL_CONFIG's.
   */
  protocol?: Pick<ProtocolConfig, 'batchSizeMax' | 'batchBytesMax' | 'viewChangeTimeoutTicks'>;
  random: ByzantineRandom;
  sign: (bytes: Uint8Array) => Uint8Array;
  sha256: Sha256;
  /**
   * Signs request (t, op) as a client of the liar's own making, whose key comes from `seed` (a
   * Byzantine client is as legal as any other). The simulator signs with its scheme and records the
   * request as issued; absent (a real replica), real ed25519.
   */
  signAsClient?: (seed: Uint8Array, t: number, op: Uint8Array) => Signed<RequestBody>;
}

/** What is actually put on the wire: a message (possibly forged) or raw bytes (garbage). */
export type Payload = Message | Uint8Array;

/** What a replica tells a client about its operations: a REPLY, or the answer to a read-only query. */
export type ClientAnswer = { type: 'reply'; reply: ReplyBody } | QueryResultFrame;

export interface ByzantineStrategy {
  readonly behaviour: ByzantineBehaviour;
  /** What to send instead of `message` to replica `to` (nothing, the same, or something else). */
  outgoing(message: Message, to: ReplicaId, context: ByzantineContext): Payload[];
  /** Called for every authenticated message this replica receives (replay records them). */
  observe(message: Message): void;
  /**
   * Whether the honest core gets to see `message` (a client's request or any replica message,
   * once authenticated): a liar may pretend it never arrived.
   */
  admits(message: Message): boolean;
  /** Extra traffic on every tick, as (destination, payload) pairs. */
  onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }>;
  /**
   * What to send the client instead of the honest `answer` its core computed (nothing, the same, or
   * a forgery). Replies are not signed, so a liar can say anything here under its own id.
   */
  toClient(answer: ClientAnswer, context: ByzantineContext): ClientAnswer[];
}

/** Most messages a replaying replica remembers. */
const REPLAY_HISTORY_MAX = 256;
/** Forged messages a flooding replica sends per tick. */
const FLOOD_MESSAGES_PER_TICK = 8;

function resign<B extends Body>(body: B, context: ByzantineContext): Signed<B> {
  return signBody(body, context.sign);
}

function isOwn(message: Message, id: ReplicaId): boolean {
  switch (message.type) {
    case 'pre-prepare':
      return message.prePrepare.body.replica === id;
    case 'prepare':
      return message.prepare.body.replica === id;
    case 'commit':
      return message.commit.body.replica === id;
    case 'checkpoint':
      return message.checkpoint.body.replica === id;
    case 'view-change':
      return message.viewChange.body.replica === id;
    case 'new-view':
      return message.newView.body.replica === id;
    default:
      return false;
  }
}

abstract class HonestByDefault implements ByzantineStrategy {
  abstract readonly behaviour: ByzantineBehaviour;
  outgoing(message: Message, _to: ReplicaId, _context: ByzantineContext): Payload[] {
    return [message];
  }
  observe(_message: Message): void {}
  admits(_message: Message): boolean {
    return true;
  }
  onTick(_context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    return [];
  }
  toClient(answer: ClientAnswer, _context: ByzantineContext): ClientAnswer[] {
    return [answer];
  }
}

/** Sends nothing at all, to replicas or clients (a muted replica that still counts towards f). */
class Silent extends HonestByDefault {
  readonly behaviour = 'silent';
  override outgoing(): Payload[] {
    return [];
  }
  override toClient(): ClientAnswer[] {
    return [];
  }
}

/** As primary, sends one batch to half of the backups and a different batch to the other half. */
class Equivocate extends HonestByDefault {
  readonly behaviour = 'equivocate';
  override outgoing(message: Message, to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'pre-prepare' || !isOwn(message, context.id) || to % 2 === 0) return [message];
    const batch = message.batch.slice(1);
    const body = message.prePrepare.body;
    const prePrepare = resign<PrePrepareBody>(
      { ...body, digest: batchDigest(batch, context.sha256) },
      context,
    );
    return [{ type: 'pre-prepare', prePrepare, batch }];
  }
}

/** PRE-PREPAREs, PREPAREs and COMMITs carry digests that match nothing. */
class BadDigest extends HonestByDefault {
  readonly behaviour = 'bad-digest';
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (!isOwn(message, context.id)) return [message];
    const digest = context.random.bytes(DIGEST_BYTES);
    switch (message.type) {
      case 'pre-prepare':
        return [{ ...message, prePrepare: resign({ ...message.prePrepare.body, digest }, context) }];
      case 'prepare':
        return [
          { type: 'prepare', prepare: resign<PrepareBody>({ ...message.prepare.body, digest }, context) },
        ];
      case 'commit':
        return [{ type: 'commit', commit: resign<CommitBody>({ ...message.commit.body, digest }, context) }];
      default:
        return [message];
    }
  }
}

/** Corrupted, truncated or impersonating signatures. */
class BadSignature extends HonestByDefault {
  readonly behaviour = 'bad-signature';
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (!isOwn(message, context.id)) return [message];
    const mode = context.random.int(0, 2);
    const forge = <B extends Body>(signed: Signed<B>): Signed<B> => {
      if (mode === 0) {
        const signature = signed.signature.slice();
        signature[context.random.int(0, signature.length - 1)]! ^= 1 << context.random.int(0, 7);
        return { ...signed, signature };
      }
      if (mode === 1) return { ...signed, signature: signed.signature.slice(0, signed.signature.length - 1) };
      // Claim to be another replica, signed with our own key.
      const body = signed.body as B & { replica: number };
      const other =
        (body.replica + 1 + context.random.int(0, context.replicaCount - 2)) % context.replicaCount;
      return resign({ ...body, replica: other }, context);
    };
    switch (message.type) {
      case 'pre-prepare':
        return [{ ...message, prePrepare: forge(message.prePrepare) }];
      case 'prepare':
        return [{ type: 'prepare', prepare: forge(message.prepare) }];
      case 'commit':
        return [{ type: 'commit', commit: forge(message.commit) }];
      case 'checkpoint':
        return [{ type: 'checkpoint', checkpoint: forge(message.checkpoint) }];
      case 'view-change':
        return [{ type: 'view-change', viewChange: forge(message.viewChange) }];
      case 'new-view':
        return [{ type: 'new-view', newView: forge(message.newView) }];
      default:
        return [message];
    }
  }
}

/** Re-sends genuine messages it saw earlier (from any replica, often from earlier views). */
class Replay extends HonestByDefault {
  readonly behaviour = 'replay';
  private readonly history: Message[] = [];
  override observe(message: Message): void {
    if (message.type === 'request' || message.type === 'reply') return;
    this.history.push(message);
    if (this.history.length > REPLAY_HISTORY_MAX)
      this.history.splice(0, this.history.length - REPLAY_HISTORY_MAX);
  }
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    if (this.history.length === 0 || !context.random.chance(0.3)) return [];
    // Prefer the oldest half: those are the stale messages of earlier views and checkpoints.
    const index = context.random.int(0, Math.max(0, Math.floor(this.history.length / 2) - 1));
    return [{ to: 'all', payload: this.history[index]! }];
  }
}

/** PREPAREs and COMMITs for digests no primary ever pre-prepared. */
class UnpreparedVotes extends HonestByDefault {
  readonly behaviour = 'unprepared-votes';
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    if (!context.random.chance(0.3)) return [];
    const seq = context.lowWatermark + context.random.int(1, context.watermarkWindow);
    const digest = context.random.bytes(DIGEST_BYTES);
    const base = { view: context.view, seq, digest, replica: context.id };
    return [
      {
        to: 'all',
        payload: { type: 'prepare', prepare: resign<PrepareBody>({ type: 'prepare', ...base }, context) },
      },
      {
        to: 'all',
        payload: { type: 'commit', commit: resign<CommitBody>({ type: 'commit', ...base }, context) },
      },
    ];
  }
}

/** CHECKPOINTs whose state digest is a lie. */
class FakeCheckpoint extends HonestByDefault {
  readonly behaviour = 'fake-checkpoint';
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'checkpoint' || !isOwn(message, context.id)) return [message];
    const body = message.checkpoint.body;
    const checkpoint = resign<CheckpointBody>(
      { ...body, stateDigest: context.random.bytes(DIGEST_BYTES) },
      context,
    );
    return [{ type: 'checkpoint', checkpoint }];
  }
}

/** VIEW-CHANGEs that withhold prepared certificates, or carry fabricated ones. */
class FakeViewChange extends HonestByDefault {
  readonly behaviour = 'fake-view-change';
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'view-change' || !isOwn(message, context.id)) return [message];
    const body = message.viewChange.body;
    if (context.random.chance(0.5)) {
      // Withhold: claim nothing prepared and no checkpoint (a valid but lying message).
      const withheld = resign<ViewChangeBody>(
        { ...body, stableSeq: 0, checkpointProof: [], prepared: [] },
        context,
      );
      return [{ type: 'view-change', viewChange: withheld }];
    }
    // Fabricate: a certificate for a batch nobody proposed, "prepared" by this replica alone
    // under the names of others.
    const oldView = Math.max(0, body.newView - 1);
    const seq = body.stableSeq + 1;
    const digest = batchDigest([], context.sha256);
    const primary = primaryOf(oldView, context.replicaCount);
    const prePrepare = resign<PrePrepareBody>(
      { type: 'pre-prepare', view: oldView, seq, digest, replica: primary },
      context,
    );
    const prepares = [1, 2].map((offset) =>
      resign<PrepareBody>(
        { type: 'prepare', view: oldView, seq, digest, replica: (primary + offset) % context.replicaCount },
        context,
      ),
    );
    const prepared = [
      { prePrepare, prepares },
      ...body.prepared.filter((c) => c.prePrepare.body.seq !== seq),
    ];
    return [{ type: 'view-change', viewChange: resign<ViewChangeBody>({ ...body, prepared }, context) }];
  }
}

/** As new primary, sends a NEW-VIEW whose O does not follow from its V. */
class BadNewView extends HonestByDefault {
  readonly behaviour = 'bad-new-view';
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'new-view' || !isOwn(message, context.id)) return [message];
    const body = message.newView.body;
    const prePrepares = [...body.prePrepares];
    const lastSeq = prePrepares.at(-1)?.body.seq ?? context.lowWatermark;
    if (prePrepares.length > 0 && context.random.chance(0.5)) {
      const last = prePrepares.pop()!;
      prePrepares.push(resign({ ...last.body, digest: context.random.bytes(DIGEST_BYTES) }, context));
    } else {
      const digest = context.random.bytes(DIGEST_BYTES);
      prePrepares.push(
        resign<PrePrepareBody>(
          { type: 'pre-prepare', view: body.view, seq: lastSeq + 1, digest, replica: context.id },
          context,
        ),
      );
    }
    return [{ type: 'new-view', newView: resign<NewViewBody>({ ...body, prePrepares }, context) }];
  }
}

/**
 * Orders everyone but one client: the first client whose request reaches it, chosen once. Its
 * core never sees that client's requests (from the client or relayed by backups), so as primary
 * it never proposes them, while it proposes everyone else's promptly and is otherwise honest. The
 * backups, which hold the victim's request once it retransmits to them, must replace it although
 * the view keeps executing batches (the request timer's rule, docs/protocol.md).
 */
class Censor extends HonestByDefault {
  readonly behaviour = 'censor';
  #victim: string | null = null;
  /** Requests of the victim kept from the core (evidence that it censored). */
  censored = 0;
  override admits(message: Message): boolean {
    if (message.type !== 'request') return true;
    const client = toHex(message.request.body.client);
    this.#victim ??= client;
    if (client !== this.#victim) return true;
    this.censored++;
    return false;
  }
}

/** Floods of sequence numbers far outside the watermarks, huge views, and garbage frames. */
class Flood extends HonestByDefault {
  readonly behaviour = 'flood';
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    const out: Array<{ to: ReplicaId | 'all'; payload: Payload }> = [];
    for (let i = 0; i < FLOOD_MESSAGES_PER_TICK; i++) {
      const farSeq = context.lowWatermark + context.watermarkWindow + context.random.int(1, 1_000_000);
      const digest = context.random.bytes(DIGEST_BYTES);
      switch (context.random.int(0, 3)) {
        case 0: {
          const prepare = resign<PrepareBody>(
            { type: 'prepare', view: context.view, seq: farSeq, digest, replica: context.id },
            context,
          );
          out.push({ to: 'all', payload: { type: 'prepare', prepare } });
          break;
        }
        case 1: {
          const seq = farSeq - (farSeq % context.checkpointInterval);
          const checkpoint = resign<CheckpointBody>(
            { type: 'checkpoint', seq, stateDigest: digest, replica: context.id },
            context,
          );
          out.push({ to: 'all', payload: { type: 'checkpoint', checkpoint } });
          break;
        }
        case 2: {
          const viewChange = resign<ViewChangeBody>(
            {
              type: 'view-change',
              newView: context.view + context.random.int(1, 1_000_000),
              stableSeq: 0,
              checkpointProof: [],
              prepared: [],
              replica: context.id,
            },
            context,
          );
          out.push({ to: 'all', payload: { type: 'view-change', viewChange } });
          break;
        }
        default:
          out.push({ to: 'all', payload: context.random.bytes(context.random.int(1, 200)) });
      }
    }
    return out;
  }
}

/**
 * Honest in everything but the batches it hands over: every answer to FETCH-BATCH carries other
 * requests than the ones asked for (the first one left out, or a replayed batch in place of the
 * null one), and every tick it pushes its last batch, unasked, to every replica. Aimed at the
 * batch fetch after a view change: it vouches like a correct replica (its PREPAREs are real), so
 * it is among the replicas asked.
 */
class WrongBatches extends HonestByDefault {
  readonly behaviour = 'wrong-batches';
  private lastBatch: { seq: number; batch: Signed<RequestBody>[] } | null = null;
  override outgoing(message: Message): Payload[] {
    if (message.type === 'pre-prepare' && message.batch.length > 0)
      this.lastBatch = { seq: message.prePrepare.body.seq, batch: message.batch };
    if (message.type !== 'batch') return [message];
    const forged = message.batch.length > 0 ? message.batch.slice(1) : (this.lastBatch?.batch ?? []);
    return [{ type: 'batch', seq: message.seq, batch: forged }];
  }
  override observe(message: Message): void {
    if (message.type === 'pre-prepare' && message.batch.length > 0)
      this.lastBatch = { seq: message.prePrepare.body.seq, batch: message.batch };
  }
  override onTick(): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    if (this.lastBatch === null) return [];
    return [{ to: 'all', payload: { type: 'batch', seq: this.lastBatch.seq, batch: this.lastBatch.batch } }];
  }
}

/**
 * A lie about a result that keeps its shape, so a client cannot tell it from the truth by looking:
 * a transfer that went through is reported with a balance one higher, or (for odd t) as refused for
 * insufficient funds; a rejected transfer is reported as done; a balance is one higher, and a
 * missing account is reported as holding 1. A function of the honest result and t alone, so that
 * f liars forge the same bytes and vote together, the strongest lie f replicas can tell.
 */
export function forgeResult(result: Uint8Array, t: number): Uint8Array {
  let honest: OperationResult;
  try {
    honest = decodeResult(result);
  } catch {
    return result; // never from an honest core; nothing plausible to forge from
  }
  if (honest.status === 'rejected') return encodeResult({ status: 'ok', type: 'transfer', balance: 0 });
  if (honest.type === 'transfer') {
    if (t % 2 === 1) {
      return encodeResult({
        status: 'rejected',
        reason: 'insufficient-funds',
        message: `balance ${honest.balance} is less than the amount ${honest.balance + 1}`,
      });
    }
    return encodeResult({ ...honest, balance: honest.balance + 1 });
  }
  return encodeResult({ ...honest, exists: true, balance: honest.balance + 1 });
}

/**
 * Honest towards replicas, lying in every REPLY: same view, sequence number, t and client, and a
 * forged result (`forgeResult`). Against a client that takes fewer than f+1 matching replies.
 */
class ForgedReplies extends HonestByDefault {
  readonly behaviour = 'forged-replies';
  override toClient(answer: ClientAnswer): ClientAnswer[] {
    if (answer.type !== 'reply') return [answer];
    const { reply } = answer;
    return [{ type: 'reply', reply: { ...reply, result: forgeResult(reply.result, reply.t) } }];
  }
}

/** Read-only operations a stale-reading liar remembers answers for. */
const FORGED_READS_REMEMBERED_MAX = 1024;

/**
 * Honest towards replicas and in replies, lying in every query answer while claiming to be up to
 * date (its honest view and lastExecuted): it answers with the value it held before the last change
 * it saw, true once and stale now, which a correct replica that lags may still hold and so vote
 * for; for a value it has not seen change, a forged one (`forgeResult`). Against a read that takes
 * fewer than 2f+1 matching answers, or counts answers from replicas behind the client's writes.
 */
class ForgedReads extends HonestByDefault {
  readonly behaviour = 'forged-reads';
  /** Hex of the query operation → the honest answer now and the one before it. */
  private readonly answers = new Map<string, { current: Uint8Array; previous: Uint8Array | null }>();
  override toClient(answer: ClientAnswer): ClientAnswer[] {
    if (answer.type !== 'query-result') return [answer];
    return [{ ...answer, result: this.staleOrForged(answer.result) }];
  }
  private staleOrForged(honest: Uint8Array): Uint8Array {
    // The answer does not carry its operation; a balance names its address, which is enough.
    const key = answerKey(honest);
    let known = this.answers.get(key);
    if (known === undefined) {
      if (this.answers.size >= FORGED_READS_REMEMBERED_MAX) this.answers.clear();
      known = { current: honest, previous: null };
      this.answers.set(key, known);
    } else if (!bytesEqual(known.current, honest)) {
      known.previous = known.current;
      known.current = honest;
    }
    return known.previous ?? forgeResult(honest, 0);
  }
}

/** What a balance answer is about (its address), or the whole answer for anything else. */
function answerKey(result: Uint8Array): string {
  let decoded: OperationResult | null = null;
  try {
    decoded = decodeResult(result);
  } catch {
    decoded = null;
  }
  return toHex(decoded?.status === 'ok' && decoded.type === 'balance' ? decoded.address : result);
}

/**
 * Keeps its view busy without serving anyone. As primary, every PRE-PREPARE it sends carries the
 * empty batch (re-signed under the empty batch's digest, the same for every sequence number, so it
 * never sends two PRE-PREPAREs for one slot); and once it is in its view (view 0, or after sending
 * its NEW-VIEW) it proposes one more empty batch every tick, above anything it proposed there and
 * inside the watermarks. The view executes batch after batch, checkpoints become stable, and no
 * client request ever executes (its own core, which holds them, votes for none of the empty slots
 * and catches up by state transfer). Aimed at the request timer: a backup whose timer restarted on
 * every executed batch would never replace it; the timer waits for the request it times (or
 * others it knew were waiting), not for any progress.
 */
class EmptyBatches extends HonestByDefault {
  readonly behaviour = 'empty-batches';
  /** The view it proposes in (-1: none yet) and the highest sequence number it proposed there. */
  private proposing = { view: -1, seq: 0 };
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type === 'new-view' && isOwn(message, context.id)) {
      const { view, prePrepares } = message.newView.body;
      const seq = Math.max(0, ...prePrepares.map((prePrepare) => prePrepare.body.seq));
      this.noteProposed(view, seq);
      return [message];
    }
    if (message.type !== 'pre-prepare' || !isOwn(message, context.id)) return [message];
    const { view, seq } = message.prePrepare.body;
    this.noteProposed(view, seq);
    return message.batch.length === 0 ? [message] : [emptyPrePrepare(view, seq, context)];
  }
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    const { view } = context;
    if (primaryOf(view, context.replicaCount) !== context.id) return [];
    if (view === 0) this.noteProposed(0, 0);
    if (this.proposing.view !== view) return []; // not in its view yet: its NEW-VIEW comes first
    const seq = Math.max(this.proposing.seq, context.lowWatermark) + 1;
    if (seq > context.lowWatermark + context.watermarkWindow) return [];
    this.proposing.seq = seq;
    return [{ to: 'all', payload: emptyPrePrepare(view, seq, context) }];
  }
  private noteProposed(view: number, seq: number): void {
    if (view > this.proposing.view) this.proposing = { view, seq };
    else if (view === this.proposing.view) this.proposing.seq = Math.max(this.proposing.seq, seq);
  }
}

function emptyPrePrepare(view: number, seq: number, context: ByzantineContext): Message {
  const digest = batchDigest([], context.sha256);
  const prePrepare = resign<PrePrepareBody>(
    { type: 'pre-prepare', view, seq, digest, replica: context.id },
    context,
  );
  return { type: 'pre-prepare', prePrepare, batch: [] };
}

/** Padded PRE-PREPAREs a big-batch liar remembers, so it builds each once (not once per backup). */
const BIG_BATCHES_REMEMBERED_MAX = 64;

/**
 * As primary, fills every batch it proposes (its core's requests first, empty ones too) to the
 * batch bounds with requests of the largest legal size: operations of OPERATION_SIZE_MAX_BYTES
 * from throwaway clients, each signed by a key of its own making (t = 1, so each executes once as
 * a stranger's and changes nothing), the last one trimmed to end exactly on batchBytesMax, never
 * past batchSizeMax. The keys come from a secret it derives by signing (deterministic, and the same
 * after a restart), so a retransmission carries the same batch and it never equivocates. Its own
 * core, holding the unpadded batch, votes for none of them and catches up by state transfer. Aimed
 * at the message-size bounds: every PRE-PREPARE and BATCH is as large as the settings allow, and so
 * are the slots a later view change carries and fetches; each must still fit a frame.
 */
class BigBatches extends HonestByDefault {
  readonly behaviour = 'big-batches';
  private readonly padded = new Map<string, Message>();
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'pre-prepare' || !isOwn(message, context.id)) return [message];
    const body = message.prePrepare.body;
    const key = `${body.view}:${body.seq}:${toHex(body.digest)}`;
    let padded = this.padded.get(key);
    if (padded === undefined) {
      const batch = fillBatch(message.batch, `${body.view}:${body.seq}`, context);
      const prePrepare = resign<PrePrepareBody>(
        { ...body, digest: batchDigest(batch, context.sha256) },
        context,
      );
      padded = { type: 'pre-prepare', prePrepare, batch };
      if (this.padded.size >= BIG_BATCHES_REMEMBERED_MAX)
        this.padded.delete(this.padded.keys().next().value!);
      this.padded.set(key, padded);
    }
    return [padded];
  }
}

/**
 * `batch` followed by requests of the largest legal size from throwaway clients, until one more
 * would pass batchSizeMax or batchBytesMax (the last is trimmed to end exactly on the byte budget).
 * `label` names the batch: the same label gives the same requests.
 */
function fillBatch(
  batch: readonly Signed<RequestBody>[],
  label: string,
  context: ByzantineContext,
): Signed<RequestBody>[] {
  const { batchSizeMax, batchBytesMax } = context.protocol ?? DEFAULT_PROTOCOL_CONFIG;
  // A secret only this replica can produce, the same every time: its signature of a fixed text.
  const secret = context.sign(utf8('pbft byzantine throwaway clients'));
  const filled = [...batch];
  let bytes = filled.reduce((sum, request) => sum + requestWireBytes(request), 0);
  while (filled.length < batchSizeMax) {
    const seed = context.sha256(concatBytes(secret, utf8(`${label}:${filled.length}`)));
    let request = throwawayRequest(seed, OPERATION_SIZE_MAX_BYTES, context);
    const overBytes = bytes + requestWireBytes(request) - batchBytesMax;
    if (overBytes >= OPERATION_SIZE_MAX_BYTES) break;
    // A shorter operation is at least as many bytes shorter on the wire: the trimmed one fits.
    if (overBytes > 0) request = throwawayRequest(seed, OPERATION_SIZE_MAX_BYTES - overBytes, context);
    filled.push(request);
    bytes += requestWireBytes(request);
    if (overBytes > 0) break;
  }
  return filled;
}

/** Request t = 1 of the throwaway client whose key comes from `seed`: `opBytes` of junk. */
function throwawayRequest(seed: Uint8Array, opBytes: number, context: ByzantineContext): Signed<RequestBody> {
  const op = new Uint8Array(opBytes);
  op.set(seed.subarray(0, Math.min(seed.length, opBytes)));
  if (context.signAsClient !== undefined) return context.signAsClient(seed, 1, op);
  const signer = createSigner(seed);
  return signBody<RequestBody>({ type: 'request', client: signer.publicKey, t: 1, op }, (bytes) =>
    signer.sign(bytes),
  );
}

/** Views ahead of its own that a future-view flooder writes for (early buffers keep only the next). */
const FUTURE_VIEWS_AHEAD = 3;
/** Slots (view, seq) a future-view flooder writes per tick: two votes each, and a PRE-PREPARE where it may. */
const FUTURE_SLOTS_PER_TICK = 2;

/**
 * Fills the early buffers. Every tick it writes for a few more slots (view, seq) of the views
 * just ahead of its own (the next one, which a replica keeps early messages for, and two beyond,
 * which it must not keep), at sequence numbers spread over the whole watermark window: a PREPARE
 * (for a digest nobody proposed) and a COMMIT, each signed by itself; in the views it is primary
 * of, a PRE-PREPARE carrying the largest batch the bounds allow (once per slot until its view or
 * watermarks move: it is dear to build and to check) and a COMMIT for it. Nothing is forged: each
 * message could be a correct replica's that is ahead. Aimed at the early buffer: it must keep
 * messages for the next view only, one per (type, view, seq) per sender, within a byte budget per
 * sender. When the view it flooded as primary comes, its early PRE-PREPAREs contradict the
 * NEW-VIEW and its core's proposals (refused as conflicting), and it is replaced.
 */
class FloodFutureViews extends HonestByDefault {
  readonly behaviour = 'flood-future-views';
  private cursor = 0;
  private fullBatch: { batch: Signed<RequestBody>[]; digest: Uint8Array } | null = null;
  /** Slots it sent a PRE-PREPARE for since its view or watermarks last moved. */
  private readonly proposed = new Set<string>();
  private proposedSince = '';
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    const since = `${context.view}:${context.lowWatermark}`;
    if (since !== this.proposedSince) {
      this.proposedSince = since;
      this.proposed.clear();
    }
    const out: Array<{ to: ReplicaId | 'all'; payload: Payload }> = [];
    const slots = FUTURE_VIEWS_AHEAD * context.watermarkWindow;
    for (let i = 0; i < FUTURE_SLOTS_PER_TICK; i++) {
      this.cursor = (this.cursor + 1) % slots;
      const view = context.view + 1 + (this.cursor % FUTURE_VIEWS_AHEAD);
      const seq = context.lowWatermark + 1 + Math.floor(this.cursor / FUTURE_VIEWS_AHEAD);
      const base = { view, seq, digest: context.random.bytes(DIGEST_BYTES), replica: context.id };
      if (primaryOf(view, context.replicaCount) === context.id) {
        // Its own view: it proposes and commits what it proposed (a primary sends no PREPARE).
        const { batch, digest } = this.largestBatch(context);
        base.digest = digest;
        if (!this.proposed.has(`${view}:${seq}`)) {
          this.proposed.add(`${view}:${seq}`);
          const prePrepare = resign<PrePrepareBody>({ type: 'pre-prepare', ...base }, context);
          out.push({ to: 'all', payload: { type: 'pre-prepare', prePrepare, batch } });
        }
      } else {
        const prepare = resign<PrepareBody>({ type: 'prepare', ...base }, context);
        out.push({ to: 'all', payload: { type: 'prepare', prepare } });
      }
      const commit = resign<CommitBody>({ type: 'commit', ...base }, context);
      out.push({ to: 'all', payload: { type: 'commit', commit } });
    }
    return out;
  }
  /** One batch at the bounds, built once and proposed in every slot. */
  private largestBatch(context: ByzantineContext): { batch: Signed<RequestBody>[]; digest: Uint8Array } {
    this.fullBatch ??= (() => {
      const batch = fillBatch([], 'future-views', context);
      return { batch, digest: batchDigest(batch, context.sha256) };
    })();
    return this.fullBatch;
  }
}

/**
 * Withholds its ordering messages from f replicas: the f that follow it (ids id+1, id+2, …
 * modulo n), its view's primary excepted. As primary it sends its PRE-PREPAREs and COMMITs to the
 * other 2f backups only, so exactly a quorum (they and itself) can prepare and commit each batch;
 * as a backup its PREPAREs and COMMITs reach the primary and the others but not those f (f such
 * liars, each following a liar primary, leave out the same f). Otherwise honest: its CHECKPOINTs,
 * VIEW-CHANGEs, answers to fetches and to clients go to everyone. The replicas left out are
 * correct and never see a PRE-PREPARE of its views, and the view goes on without them. Aimed at
 * laggards catching up (FETCH-STATE, state transfer, batches committed elsewhere) and at reads:
 * the left-out replicas answer queries from behind the clients' writes.
 */
class SelectiveCommit extends HonestByDefault {
  readonly behaviour = 'selective-commit';
  override outgoing(message: Message, to: ReplicaId, context: ByzantineContext): Payload[] {
    const ordering =
      message.type === 'pre-prepare' || message.type === 'prepare' || message.type === 'commit';
    if (!ordering || !isOwn(message, context.id)) return [message];
    return leftOut(context).includes(to) ? [] : [message];
  }
}

/** The f replicas a selective liar leaves out: those that follow it, past its view's primary. */
function leftOut(context: ByzantineContext): ReplicaId[] {
  const n = context.replicaCount;
  const primary = primaryOf(context.view, n);
  const f = Math.floor((n - 1) / 3);
  const out: ReplicaId[] = [];
  for (let step = 1; out.length < f && step < n; step++) {
    const replica = (context.id + step) % n;
    if (replica !== primary) out.push(replica);
  }
  return out;
}

/** Ticks a slow primary keeps in hand beyond twice the agreement time it measured. */
const SLOW_PRIMARY_MARGIN_TICKS = 2;
/** Agreement times a slow primary remembers (it plans with the longest of them). */
const SLOW_PRIMARY_SAMPLES_MAX = 32;

/**
 * As primary, holds every PRE-PREPARE its core proposes for as long as it dares, then sends it to
 * everyone: the backups' base request timeout (viewChangeTimeoutTicks), less twice the longest
 * agreement it measured recently (ticks from sending a PRE-PREPARE to seeing 2f COMMITs of others
 * for it), less SLOW_PRIMARY_MARGIN_TICKS. The hold counts from when its core proposed, which is
 * when the requests reached it, never later than a backup heard of them, so each request executes
 * just before a backup's timer for it would expire, under any load. Each slot is held on its own,
 * so the pipeline stays full; its core's retransmissions of a held slot are swallowed. Honest
 * otherwise, its NEW-VIEW included. It is never silent, only slow: aimed at a request timer that
 * judges liveness, not pace.
 */
class SlowPrimary extends HonestByDefault {
  readonly behaviour = 'slow-primary';
  private ticks = 0;
  /** The cluster's size, from the last context seen (observe gets none). */
  private replicaCount = 4;
  /** PRE-PREPAREs held back, by `view:seq`, and when each goes out. */
  private readonly held = new Map<string, { view: number; seq: number; message: Message; dueTick: number }>();
  /** Slots whose PRE-PREPARE went out: when, and the replicas whose COMMIT for it arrived. */
  private readonly released = new Map<
    string,
    { view: number; seq: number; atTick: number; commits: Set<ReplicaId> }
  >();
  /** Recent agreement times, in ticks. */
  private readonly agreementTicks: number[] = [];
  override outgoing(message: Message, _to: ReplicaId, context: ByzantineContext): Payload[] {
    if (message.type !== 'pre-prepare' || !isOwn(message, context.id)) return [message];
    const { view, seq } = message.prePrepare.body;
    const key = `${view}:${seq}`;
    if (this.released.has(key)) return [message];
    if (!this.held.has(key))
      this.held.set(key, { view, seq, message, dueTick: this.ticks + this.holdTicks(context) });
    return [];
  }
  override observe(message: Message): void {
    if (message.type !== 'commit') return;
    const { view, seq, replica } = message.commit.body;
    const slot = this.released.get(`${view}:${seq}`);
    if (slot === undefined || slot.commits.has(replica)) return;
    slot.commits.add(replica);
    // 2f COMMITs of others (f from n = 3f + 1 or more): the slot committed at the replicas that sent them.
    if (slot.commits.size !== 2 * Math.floor((this.replicaCount - 1) / 3)) return;
    this.agreementTicks.push(this.ticks - slot.atTick);
    if (this.agreementTicks.length > SLOW_PRIMARY_SAMPLES_MAX) this.agreementTicks.shift();
  }
  private holdTicks(context: ByzantineContext): number {
    this.replicaCount = context.replicaCount;
    const timeoutTicks = (context.protocol ?? DEFAULT_PROTOCOL_CONFIG).viewChangeTimeoutTicks;
    // Before it has measured anything, it assumes agreement takes a quarter of the timeout.
    const agreement = this.agreementTicks.length === 0 ? timeoutTicks / 4 : Math.max(...this.agreementTicks);
    return Math.max(0, Math.floor(timeoutTicks - 2 * agreement - SLOW_PRIMARY_MARGIN_TICKS));
  }
  override onTick(context: ByzantineContext): Array<{ to: ReplicaId | 'all'; payload: Payload }> {
    this.ticks++;
    this.replicaCount = context.replicaCount;
    const out: Array<{ to: ReplicaId | 'all'; payload: Payload }> = [];
    for (const [key, slot] of this.held) {
      if (slot.view < context.view || slot.seq <= context.lowWatermark) this.held.delete(key);
      else if (slot.dueTick <= this.ticks) {
        out.push({ to: 'all', payload: slot.message });
        this.held.delete(key);
        this.released.set(key, { view: slot.view, seq: slot.seq, atTick: this.ticks, commits: new Set() });
      }
    }
    for (const [key, slot] of this.released)
      if (slot.view < context.view || slot.seq <= context.lowWatermark) this.released.delete(key);
    return out;
  }
}

export function createStrategy(behaviour: ByzantineBehaviour): ByzantineStrategy {
  switch (behaviour) {
    case 'silent':
      return new Silent();
    case 'equivocate':
      return new Equivocate();
    case 'bad-digest':
      return new BadDigest();
    case 'bad-signature':
      return new BadSignature();
    case 'replay':
      return new Replay();
    case 'unprepared-votes':
      return new UnpreparedVotes();
    case 'fake-checkpoint':
      return new FakeCheckpoint();
    case 'fake-view-change':
      return new FakeViewChange();
    case 'bad-new-view':
      return new BadNewView();
    case 'flood':
      return new Flood();
    case 'wrong-batches':
      return new WrongBatches();
    case 'forged-replies':
      return new ForgedReplies();
    case 'forged-reads':
      return new ForgedReads();
    case 'censor':
      return new Censor();
    case 'empty-batches':
      return new EmptyBatches();
    case 'big-batches':
      return new BigBatches();
    case 'flood-future-views':
      return new FloodFutureViews();
    case 'selective-commit':
      return new SelectiveCommit();
    case 'slow-primary':
      return new SlowPrimary();
  }
}
