import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeCanonical } from '../../../src/codec/cbor.ts';
import {
  type Body,
  decodeMessage,
  encodeBody,
  encodeMessage,
  type Message,
  type PrepareBody,
  signBody,
} from '../../../src/protocol/messages.ts';
import { signedParts } from '../../../src/protocol/verify.ts';
import { compareBytes } from '../../../src/util/bytes.ts';
import {
  digestOf,
  exampleMessages,
  MESSAGE_TYPES,
  replicaSigners,
  reverseKeyOrder,
  signByReplica,
} from './fixtures.ts';

const SEED = 424_242;
const examples = exampleMessages();

/** Canonical (RFC 8949 §4.2.1) key order: bytewise order of the encoded keys. */
function canonicallySorted(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => compareBytes(encodeCanonical(a), encodeCanonical(b)));
}

describe('message round trip', () => {
  it.each(MESSAGE_TYPES)('%s: decode(encode(m)) equals m and re-encodes to identical bytes', (type) => {
    const message = examples[type];
    const frame = encodeMessage(message);
    const decoded = decodeMessage(frame);
    expect(decoded).toEqual(message);
    expect(decoded.type).toBe(type);
    expect(encodeMessage(decoded)).toEqual(frame);
  });

  it.each(MESSAGE_TYPES)('%s: every nested signed part keeps its body, bytes and signature', (type) => {
    const message = examples[type];
    const original = [...signedParts(message)];
    const decoded = [...signedParts(decodeMessage(encodeMessage(message)))];
    expect(decoded).toHaveLength(original.length);
    for (const [index, part] of decoded.entries()) {
      const expected = original[index]!;
      expect(part.body).toEqual(expected.body);
      expect(part.bytes).toEqual(expected.bytes);
      expect(part.signature).toEqual(expected.signature);
      // The signed bytes are exactly the canonical encoding of the body.
      expect(encodeBody(part.body)).toEqual(part.bytes);
    }
  });

  it('the examples really are nested: signed-part counts per type', () => {
    const counts = Object.fromEntries(
      MESSAGE_TYPES.map((type) => [type, [...signedParts(examples[type])].length]),
    );
    expect(counts).toEqual({
      request: 1,
      'pre-prepare': 3, // header + 2 requests
      prepare: 1,
      commit: 1,
      checkpoint: 1,
      // 1 + 3 checkpoint + (1 + 2) + (1 + 2) prepared: certificates carry headers, not batches
      'view-change': 10,
      // 1 + 3 view-changes × 10 + 3 pre-prepares
      'new-view': 34,
      'fetch-state': 1,
      'fetch-batch': 1,
      batch: 2, // its requests; the batch itself is authenticated by its digest
      state: 4, // 1 + 3 checkpoint
      reply: 0,
    });
  });

  it('a pre-prepare with an empty batch (the null request) round-trips', () => {
    const message = examples['new-view'];
    if (message.type !== 'new-view') throw new Error('fixture');
    const nullPrePrepare = message.newView.body.prePrepares.at(-1)!;
    const frame = encodeMessage({ type: 'pre-prepare', prePrepare: nullPrePrepare, batch: [] });
    expect(decodeMessage(frame)).toEqual({ type: 'pre-prepare', prePrepare: nullPrePrepare, batch: [] });
  });

  it('decoded byte fields are independent of the frame buffer', () => {
    const frame = encodeMessage(examples.prepare);
    const decoded = decodeMessage(frame);
    const snapshot = structuredClone(decoded);
    frame.fill(0);
    expect(decoded).toEqual(snapshot);
  });

  it('random PREPARE/COMMIT bodies round-trip (property, fixed seed)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('prepare' as const, 'commit' as const),
        fc.maxSafeNat(),
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 3 }),
        (type, view, seq, digest, replica) => {
          const fields = { view, seq, digest, replica };
          const message: Message =
            type === 'prepare'
              ? { type, prepare: signByReplica({ type, ...fields }) }
              : { type, commit: signByReplica({ type, ...fields }) };
          const frame = encodeMessage(message);
          const decoded = decodeMessage(frame);
          expect(decoded).toEqual(message);
          expect(encodeMessage(decoded)).toEqual(frame);
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });
});

describe('every replica encodes a message to the same bytes', () => {
  it.each(MESSAGE_TYPES)('%s: reversed key insertion order gives identical frame bytes', (type) => {
    const message = examples[type];
    const reordered = reverseKeyOrder(message);
    // The reversal really changed insertion order (otherwise the test would prove nothing).
    expect(Object.keys(reordered)).not.toEqual(Object.keys(message));
    expect(encodeMessage(reordered)).toEqual(encodeMessage(message));
  });

  it.each(MESSAGE_TYPES.filter((type) => type !== 'reply'))(
    '%s: every signed body re-signed from a reordered object gives identical bytes and signature',
    (type) => {
      for (const part of signedParts(examples[type])) {
        const reordered = reverseKeyOrder(part.body) as Body;
        expect(Object.keys(reordered)).not.toEqual(Object.keys(part.body));
        expect(encodeBody(reordered)).toEqual(part.bytes);
        if (part.body.type !== 'request') {
          const signer = replicaSigners[part.body.replica]!;
          const resigned = signBody(reordered, (bytes) => signer.sign(bytes));
          expect(resigned.bytes).toEqual(part.bytes);
          expect(resigned.signature).toEqual(part.signature);
        }
      }
    },
  );

  it('hand-written bodies with different key orders encode identically', () => {
    const digest = digestOf(0xab);
    const a: PrepareBody = { type: 'prepare', view: 2, seq: 40, digest, replica: 1 };
    const b: PrepareBody = { replica: 1, digest, seq: 40, view: 2, type: 'prepare' };
    const c: PrepareBody = { seq: 40, type: 'prepare', replica: 1, view: 2, digest };
    expect(encodeBody(b)).toEqual(encodeBody(a));
    expect(encodeBody(c)).toEqual(encodeBody(a));
  });

  it.each(MESSAGE_TYPES)('%s: every map in the frame has its keys in canonical order', (type) => {
    const seen: string[][] = [];
    let nestedBodies = 0;
    const visit = (value: unknown): void => {
      if (value instanceof Uint8Array) {
        // Signed bodies are nested canonical CBOR inside byte strings. Only the decoding may fail
        // (digests, keys, signatures and operations are not CBOR): the nested checks run outside
        // the catch, so a failing one fails the test.
        let nested: unknown;
        try {
          nested = decodeCanonical(value);
        } catch {
          return;
        }
        nestedBodies++;
        visit(nested);
        return;
      }
      if (Array.isArray(value)) {
        for (const item of value) visit(item);
        return;
      }
      if (typeof value === 'object' && value !== null) {
        const keys = Object.keys(value);
        seen.push(keys);
        expect(keys).toEqual(canonicallySorted(keys));
        for (const item of Object.values(value)) visit(item);
      }
    };
    visit(decodeCanonical(encodeMessage(reverseKeyOrder(examples[type]))));
    // Every signed body was decoded and checked: one that failed canonical decoding would have
    // been skipped as "not CBOR".
    expect(nestedBodies).toBe([...signedParts(examples[type])].length);
    expect(seen.length).toBeGreaterThan(1);
    // Length-first order: shorter keys always come first.
    for (const keys of seen) {
      const lengths = keys.map((key) => key.length);
      expect(lengths).toEqual([...lengths].sort((x, y) => x - y));
    }
  });
});
