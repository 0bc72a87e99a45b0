import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  decodeCanonical,
  encodeCanonical,
  FRAME_SIZE_MAX_BYTES,
} from '../../../src/codec/cbor.ts';
import {
  BATCH_SIZE_LIMIT,
  decodeMessage,
  encodeBody,
  encodeMessage,
  OPERATION_SIZE_MAX_BYTES,
  REPLICAS_MAX,
} from '../../../src/protocol/messages.ts';
import { concatBytes, toHex } from '../../../src/util/bytes.ts';
import {
  clientSigners,
  codecErrorCode,
  DUMMY_SIGNATURE,
  digestOf,
  exampleMessages,
  frameAroundBody,
  MESSAGE_TYPES,
  raw,
  request,
} from './fixtures.ts';

const SEED = 20_240_611;
const examples = exampleMessages();
const CBOR_LEVEL = ['NON_CANONICAL', 'MALFORMED_CBOR'];

/** The wire form of a PREPARE body, as a plain object the tests can break. */
function prepareWire(): Record<string, unknown> {
  return { type: 'prepare', view: 1, seq: 5, digest: digestOf(0x11), replica: 2 };
}

/** PREPARE body entries in canonical key order (seq, type, view, digest, replica) as raw CBOR. */
function prepareEntries(): [string, Uint8Array][] {
  const wire = prepareWire();
  return ['seq', 'type', 'view', 'digest', 'replica'].map((key) => [key, raw.item(wire[key])]);
}

function withEntry(entries: [string, Uint8Array][], key: string, value: Uint8Array): [string, Uint8Array][] {
  return entries.map(([k, v]) => [k, k === key ? value : v]);
}

/** A PREPARE frame around a body built from `wire` (after `change`), canonically encoded. */
function prepareFrame(change: (wire: Record<string, unknown>) => void): Uint8Array {
  const wire = prepareWire();
  change(wire);
  return frameAroundBody('prepare', encodeCanonical(wire));
}

/** REPLY frames carry their fields directly in the outer frame (no nested signed bytes). */
function replyEntries(): [string, Uint8Array][] {
  const frame = decodeCanonical(encodeMessage(examples.reply)) as { m: Record<string, unknown> };
  // Canonical order: t, seq, type, view, client, result, replica.
  return ['t', 'seq', 'type', 'view', 'client', 'result', 'replica'].map((key) => [
    key,
    raw.item(frame.m[key]),
  ]);
}

function replyFrame(entries: [string, Uint8Array][]): Uint8Array {
  return raw.map([
    ['m', raw.map(entries)],
    ['type', raw.item('reply')],
  ]);
}

describe('hand-built frames match the encoder (so the broken variants below differ only where intended)', () => {
  it('canonical PREPARE body and REPLY frame built by hand decode', () => {
    const body = raw.map(prepareEntries());
    expect(body).toEqual(encodeCanonical(prepareWire()));
    expect(decodeMessage(frameAroundBody('prepare', body)).type).toBe('prepare');
    expect(replyFrame(replyEntries())).toEqual(encodeMessage(examples.reply));
  });
});

describe('frame size', () => {
  it('a frame over FRAME_SIZE_MAX_BYTES is FRAME_TOO_LARGE before any parsing', () => {
    const frame = new Uint8Array(FRAME_SIZE_MAX_BYTES + 1);
    expect(codecErrorCode(() => decodeMessage(frame))).toBe('FRAME_TOO_LARGE');
    expect(codecErrorCode(() => decodeCanonical(frame))).toBe('FRAME_TOO_LARGE');
  });

  it("a caller's smaller maxBytes is enforced, and a frame of exactly maxBytes is accepted", () => {
    const frame = encodeMessage(examples['view-change']);
    expect(codecErrorCode(() => decodeMessage(frame, frame.length - 1))).toBe('FRAME_TOO_LARGE');
    expect(codecErrorCode(() => decodeMessage(frame, 16))).toBe('FRAME_TOO_LARGE');
    expect(decodeMessage(frame, frame.length)).toEqual(examples['view-change']);
  });
});

describe('malformed CBOR', () => {
  it.each([
    ['empty frame', new Uint8Array()],
    ['reserved additional info', Uint8Array.of(0x1c)],
    ['break outside an indefinite item', Uint8Array.of(0xff)],
    ['garbage', Uint8Array.of(0xff, 0xfe, 0xfd, 0x00, 0x13, 0x37)],
    ['map header with no entries', Uint8Array.of(0xa2)],
    ['undefined', Uint8Array.of(0xf7)],
    ['tagged value', Uint8Array.of(0xc1, 0x1a, 0, 0, 0, 0)],
    ['integer beyond 2^53', Uint8Array.of(0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0)],
    ['non-string map key', Uint8Array.of(0xa1, 0x01, 0x01)],
  ])('%s is MALFORMED_CBOR', (_name, frame) => {
    expect(codecErrorCode(() => decodeMessage(frame))).toBe('MALFORMED_CBOR');
  });

  it('a truncated valid frame is MALFORMED_CBOR at every cut', () => {
    const frame = encodeMessage(examples['pre-prepare']);
    for (let length = 0; length < frame.length; length += 7) {
      expect(codecErrorCode(() => decodeMessage(frame.subarray(0, length)))).toBe('MALFORMED_CBOR');
    }
  });

  it.each(MESSAGE_TYPES)('%s: trailing bytes after a valid message are rejected', (type) => {
    const frame = encodeMessage(examples[type]);
    expect(codecErrorCode(() => decodeMessage(concatBytes(frame, Uint8Array.of(0x00))))).toBe(
      'MALFORMED_CBOR',
    );
    expect(codecErrorCode(() => decodeMessage(concatBytes(frame, frame)))).toBe('MALFORMED_CBOR');
  });

  it('trailing bytes after a signed body inside the frame are rejected', () => {
    const body = concatBytes(encodeCanonical(prepareWire()), Uint8Array.of(0x00));
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('prepare', body)))).toBe('MALFORMED_CBOR');
  });
});

describe('non-canonical forms', () => {
  // Each variant is rejected at the CBOR level, in the outer frame (REPLY fields) and inside a
  // signed body (PREPARE), where a different encoding would change the bytes a signature covers.
  const cases: [string, () => [string, Uint8Array][]][] = [
    [
      'non-minimal integer (5 as 0x18 0x05)',
      () => withEntry(prepareEntries(), 'seq', Uint8Array.of(0x18, 0x05)),
    ],
    [
      'non-minimal integer (5 as a 4-byte uint)',
      () => withEntry(prepareEntries(), 'seq', Uint8Array.of(0x1a, 0, 0, 0, 5)),
    ],
    [
      'non-minimal length (digest length in 2 bytes)',
      () =>
        withEntry(prepareEntries(), 'digest', concatBytes(Uint8Array.of(0x59, 0x00, 0x20), digestOf(0x11))),
    ],
    ['map keys out of canonical order', () => prepareEntries().reverse()],
    [
      'keys in plain lexicographic instead of length-first order',
      () => [...prepareEntries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    ],
    [
      'float where an integer is expected (5.0 as half float)',
      () => withEntry(prepareEntries(), 'seq', Uint8Array.of(0xf9, 0x45, 0x00)),
    ],
    [
      'float where an integer is expected (5.0 as double)',
      () => withEntry(prepareEntries(), 'seq', Uint8Array.of(0xfb, 0x40, 0x14, 0, 0, 0, 0, 0, 0)),
    ],
    ['negative zero', () => withEntry(prepareEntries(), 'view', Uint8Array.of(0xf9, 0x80, 0x00))],
    [
      'indefinite-length byte string',
      () =>
        withEntry(
          prepareEntries(),
          'digest',
          concatBytes(Uint8Array.of(0x5f, 0x58, 0x20), digestOf(0x11), Uint8Array.of(0xff)),
        ),
    ],
    [
      'indefinite-length text string',
      () =>
        withEntry(
          prepareEntries(),
          'type',
          Uint8Array.of(0x7f, 0x67, ...new TextEncoder().encode('prepare'), 0xff),
        ),
    ],
    ['duplicate map key', () => [...prepareEntries(), ['seq', raw.item(5)]]],
  ];

  it.each(cases)('inside a signed body: %s', (_name, entries) => {
    const frame = frameAroundBody('prepare', raw.map(entries()));
    expect(CBOR_LEVEL).toContain(codecErrorCode(() => decodeMessage(frame)));
  });

  it.each([
    ['non-minimal integer', withEntry(replyEntries(), 'seq', Uint8Array.of(0x18, 17))],
    ['map keys out of canonical order', replyEntries().reverse()],
    ['float where an integer is expected', withEntry(replyEntries(), 't', Uint8Array.of(0xf9, 0x48, 0x80))],
    ['duplicate map key', [...replyEntries(), ['t', raw.item(9)]] as [string, Uint8Array][]],
  ])('in the outer frame: %s', (_name, entries) => {
    expect(CBOR_LEVEL).toContain(codecErrorCode(() => decodeMessage(replyFrame(entries))));
  });

  it('an indefinite-length array (a PRE-PREPARE batch) is rejected', () => {
    const message = examples['pre-prepare'];
    if (message.type !== 'pre-prepare') throw new Error('fixture');
    const items = message.batch.map((signed) => raw.item({ b: signed.bytes, s: signed.signature }));
    const frame = raw.map([
      ['m', raw.item({ b: message.prePrepare.bytes, s: message.prePrepare.signature })],
      ['type', raw.item('pre-prepare')],
      ['batch', concatBytes(Uint8Array.of(0x9f), ...items, Uint8Array.of(0xff))],
    ]);
    // Same content with a definite length decodes: only the length form is at fault.
    const definite = raw.map([
      ['m', raw.item({ b: message.prePrepare.bytes, s: message.prePrepare.signature })],
      ['type', raw.item('pre-prepare')],
      ['batch', concatBytes(Uint8Array.of(0x80 + items.length), ...items)],
    ]);
    expect(decodeMessage(definite)).toEqual(message);
    expect(CBOR_LEVEL).toContain(codecErrorCode(() => decodeMessage(frame)));
  });

  it('an indefinite-length map is rejected', () => {
    const body = concatBytes(
      Uint8Array.of(0xbf),
      ...prepareEntries().flatMap(([key, value]) => [raw.item(key), value]),
      Uint8Array.of(0xff),
    );
    expect(CBOR_LEVEL).toContain(codecErrorCode(() => decodeMessage(frameAroundBody('prepare', body))));
  });
});

describe('schema', () => {
  it('an unknown field at the top level is UNKNOWN_FIELD', () => {
    const wire = decodeCanonical(encodeMessage(examples.prepare)) as Record<string, unknown>;
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ ...wire, extra: 0 })))).toBe('UNKNOWN_FIELD');
    // A batch is a PRE-PREPARE field only.
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ ...wire, batch: [] })))).toBe(
      'UNKNOWN_FIELD',
    );
  });

  it('an unknown field inside a signed body is UNKNOWN_FIELD', () => {
    expect(codecErrorCode(() => decodeMessage(prepareFrame((wire) => (wire['extra'] = 1))))).toBe(
      'UNKNOWN_FIELD',
    );
  });

  it('an unknown field in the signed wrapper, a REPLY and a prepared certificate is UNKNOWN_FIELD', () => {
    const body = encodeCanonical(prepareWire());
    const wrapper = encodeCanonical({ type: 'prepare', m: { b: body, s: DUMMY_SIGNATURE, x: 0 } });
    expect(codecErrorCode(() => decodeMessage(wrapper))).toBe('UNKNOWN_FIELD');
    const reply = decodeCanonical(encodeMessage(examples.reply)) as {
      type: string;
      m: Record<string, unknown>;
    };
    expect(
      codecErrorCode(() => decodeMessage(encodeCanonical({ ...reply, m: { ...reply.m, extra: 1 } }))),
    ).toBe('UNKNOWN_FIELD');
    const message = examples['view-change'];
    if (message.type !== 'view-change') throw new Error('fixture');
    const viewChangeWire = decodeCanonical(message.viewChange.bytes) as {
      prepared: Record<string, unknown>[];
    };
    viewChangeWire.prepared[0]!['proof'] = 0;
    expect(
      codecErrorCode(() => decodeMessage(frameAroundBody('view-change', encodeCanonical(viewChangeWire)))),
    ).toBe('UNKNOWN_FIELD');
  });

  it.each(['type', 'view', 'seq', 'digest', 'replica'])(
    'a PREPARE body missing "%s" is MISSING_FIELD',
    (key) => {
      expect(codecErrorCode(() => decodeMessage(prepareFrame((wire) => delete wire[key])))).toBe(
        'MISSING_FIELD',
      );
    },
  );

  it('missing top-level and wrapper fields are MISSING_FIELD', () => {
    const message = examples['pre-prepare'];
    if (message.type !== 'pre-prepare') throw new Error('fixture');
    const m = { b: message.prePrepare.bytes, s: message.prePrepare.signature };
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'pre-prepare', m })))).toBe(
      'MISSING_FIELD',
    );
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'prepare' })))).toBe('MISSING_FIELD');
    const body = encodeCanonical(prepareWire());
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'prepare', m: { b: body } })))).toBe(
      'MISSING_FIELD',
    );
  });

  it.each<[string, (wire: Record<string, unknown>) => void]>([
    ['view as a string', (wire) => (wire['view'] = '1')],
    ['seq as a byte string', (wire) => (wire['seq'] = Uint8Array.of(5))],
    ['seq as a boolean', (wire) => (wire['seq'] = true)],
    ['seq as null', (wire) => (wire['seq'] = null)],
    ['digest as a string', (wire) => (wire['digest'] = 'ab'.repeat(16))],
    ['digest as an array', (wire) => (wire['digest'] = [...digestOf(1)])],
    ['replica as a map', (wire) => (wire['replica'] = { id: 1 })],
  ])('a PREPARE body with %s is WRONG_TYPE', (_name, change) => {
    expect(codecErrorCode(() => decodeMessage(prepareFrame(change)))).toBe('WRONG_TYPE');
  });

  it('wrong types in the frame structure are WRONG_TYPE', () => {
    const body = encodeCanonical(prepareWire());
    expect(
      codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'prepare', m: [body, DUMMY_SIGNATURE] }))),
    ).toBe('WRONG_TYPE');
    expect(
      codecErrorCode(() =>
        decodeMessage(encodeCanonical({ type: 'prepare', m: { b: 'body', s: DUMMY_SIGNATURE } })),
      ),
    ).toBe('WRONG_TYPE');
    expect(
      codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'prepare', m: { b: body, s: 7 } }))),
    ).toBe('WRONG_TYPE');
    // The signed bytes must hold a map.
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('prepare', encodeCanonical([1, 2]))))).toBe(
      'WRONG_TYPE',
    );
    const message = examples['pre-prepare'];
    if (message.type !== 'pre-prepare') throw new Error('fixture');
    const m = { b: message.prePrepare.bytes, s: message.prePrepare.signature };
    expect(codecErrorCode(() => decodeMessage(encodeCanonical({ type: 'pre-prepare', m, batch: {} })))).toBe(
      'WRONG_TYPE',
    );
    const requestBody = { type: 'request', client: clientSigners[0]!.publicKey, t: 1, op: 'text, not bytes' };
    expect(
      codecErrorCode(() => decodeMessage(frameAroundBody('request', encodeCanonical(requestBody)))),
    ).toBe('WRONG_TYPE');
  });

  it.each([31, 33, 0])('a digest of %i bytes is WRONG_LENGTH', (length) => {
    const frame = prepareFrame((wire) => (wire['digest'] = new Uint8Array(length).fill(0x11)));
    expect(codecErrorCode(() => decodeMessage(frame))).toBe('WRONG_LENGTH');
  });

  it('a checkpoint state digest of 31 bytes is WRONG_LENGTH', () => {
    const body = { type: 'checkpoint', seq: 10, stateDigest: new Uint8Array(31), replica: 0 };
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('checkpoint', encodeCanonical(body))))).toBe(
      'WRONG_LENGTH',
    );
  });

  it.each([63, 65])('a signature of %i bytes is WRONG_LENGTH (outer and nested)', (length) => {
    const signature = new Uint8Array(length).fill(0x55);
    const body = encodeCanonical(prepareWire());
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('prepare', body, signature)))).toBe(
      'WRONG_LENGTH',
    );
    const message = examples['state'];
    if (message.type !== 'state') throw new Error('fixture');
    const stateWire = decodeCanonical(message.state.bytes) as { checkpointProof: { s: Uint8Array }[] };
    stateWire.checkpointProof[1]!.s = signature;
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('state', encodeCanonical(stateWire))))).toBe(
      'WRONG_LENGTH',
    );
  });

  it('a client key of 31 bytes is WRONG_LENGTH', () => {
    const body = { type: 'request', client: new Uint8Array(31), t: 1, op: Uint8Array.of(1) };
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('request', encodeCanonical(body))))).toBe(
      'WRONG_LENGTH',
    );
  });

  it.each<[string, unknown]>([
    ['an unknown type', 'hello'],
    ['a near miss', 'Prepare'],
    ['a number', 3],
    ['a missing type', undefined],
  ])('%s at the top level is UNKNOWN_TYPE', (_name, type) => {
    const wire = decodeCanonical(encodeMessage(examples.prepare)) as Record<string, unknown>;
    const { type: _ignored, ...rest } = wire;
    const frame = encodeCanonical(type === undefined ? rest : { ...rest, type });
    expect(codecErrorCode(() => decodeMessage(frame))).toBe('UNKNOWN_TYPE');
  });

  it('a non-map top-level value is rejected', () => {
    for (const value of [0, 'prepare', [1], Uint8Array.of(1), null, true]) {
      expect(['UNKNOWN_TYPE', 'WRONG_TYPE']).toContain(
        codecErrorCode(() => decodeMessage(encodeCanonical(value))),
      );
    }
  });

  it('a signed body whose type differs from the frame type is UNKNOWN_TYPE', () => {
    const commitBody = encodeCanonical({ ...prepareWire(), type: 'commit' });
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('prepare', commitBody)))).toBe('UNKNOWN_TYPE');
    // A VIEW-CHANGE whose prepared certificate carries a COMMIT in place of a PREPARE.
    const message = examples['view-change'];
    if (message.type !== 'view-change') throw new Error('fixture');
    const wire = decodeCanonical(message.viewChange.bytes) as {
      prepared: { prepares: { b: Uint8Array; s: Uint8Array }[] }[];
    };
    const prepare = wire.prepared[0]!.prepares[0]!;
    prepare.b = encodeCanonical({ ...(decodeCanonical(prepare.b) as object), type: 'commit' });
    expect(codecErrorCode(() => decodeMessage(frameAroundBody('view-change', encodeCanonical(wire))))).toBe(
      'UNKNOWN_TYPE',
    );
  });

  it('a replica id of REPLICAS_MAX or more is OUT_OF_RANGE, REPLICAS_MAX - 1 is accepted', () => {
    expect(decodeMessage(prepareFrame((wire) => (wire['replica'] = REPLICAS_MAX - 1))).type).toBe('prepare');
    for (const replica of [REPLICAS_MAX, REPLICAS_MAX + 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      const frame = prepareFrame((wire) => (wire['replica'] = replica));
      expect(codecErrorCode(() => decodeMessage(frame))).toBe('OUT_OF_RANGE');
    }
    const fetchState = {
      type: 'fetch-state',
      view: 0,
      lastExecuted: 0,
      recovering: false,
      replica: REPLICAS_MAX,
    };
    expect(
      codecErrorCode(() => decodeMessage(frameAroundBody('fetch-state', encodeCanonical(fetchState)))),
    ).toBe('OUT_OF_RANGE');
  });

  it('a batch of BATCH_SIZE_LIMIT requests decodes; one more is WRONG_LENGTH', () => {
    const message = examples['pre-prepare'];
    if (message.type !== 'pre-prepare') throw new Error('fixture');
    const m = { b: message.prePrepare.bytes, s: message.prePrepare.signature };
    const signed = request(0, 1, 'x');
    const item = { b: signed.bytes, s: signed.signature };
    const full = encodeCanonical({
      type: 'pre-prepare',
      m,
      batch: Array.from({ length: BATCH_SIZE_LIMIT }, () => item),
    });
    const decoded = decodeMessage(full);
    expect(decoded.type === 'pre-prepare' && decoded.batch.length).toBe(BATCH_SIZE_LIMIT);
    const over = encodeCanonical({
      type: 'pre-prepare',
      m,
      batch: Array.from({ length: BATCH_SIZE_LIMIT + 1 }, () => item),
    });
    expect(codecErrorCode(() => decodeMessage(over))).toBe('WRONG_LENGTH');
  });

  it('an operation of OPERATION_SIZE_MAX_BYTES decodes; one byte more is WRONG_LENGTH', () => {
    const client = clientSigners[0]!.publicKey;
    const body = (length: number) =>
      encodeBody({ type: 'request', client, t: 1, op: new Uint8Array(length).fill(0x61) });
    expect(decodeMessage(frameAroundBody('request', body(OPERATION_SIZE_MAX_BYTES))).type).toBe('request');
    const frame = frameAroundBody('request', body(OPERATION_SIZE_MAX_BYTES + 1));
    expect(codecErrorCode(() => decodeMessage(frame))).toBe('WRONG_LENGTH');
  });

  it.each([
    ['-1', -1],
    ['-2^53 + 1', -Number.MAX_SAFE_INTEGER],
    ['0.5', 0.5],
    ['5.25', 5.25],
    ['1e300', 1e300],
  ])('a seq of %s is WRONG_TYPE', (_name, seq) => {
    expect(codecErrorCode(() => decodeMessage(prepareFrame((wire) => (wire['seq'] = seq))))).toBe(
      'WRONG_TYPE',
    );
  });

  it('a negative or fractional seq in the outer frame (REPLY) is WRONG_TYPE', () => {
    expect(
      codecErrorCode(() => decodeMessage(replyFrame(withEntry(replyEntries(), 'seq', raw.item(-3))))),
    ).toBe('WRONG_TYPE');
    expect(
      codecErrorCode(() => decodeMessage(replyFrame(withEntry(replyEntries(), 'seq', raw.item(2.5))))),
    ).toBe('WRONG_TYPE');
  });
});

describe('decoding never fails with anything but a CodecError', () => {
  /** Either the frame decodes to a message that re-encodes to exactly the frame, or a CodecError. */
  function decodesCanonicallyOrCodecError(frame: Uint8Array): void {
    let message: ReturnType<typeof decodeMessage>;
    try {
      message = decodeMessage(frame);
    } catch (error) {
      if (error instanceof CodecError) return;
      throw error;
    }
    expect(toHex(encodeMessage(message))).toBe(toHex(frame));
  }

  it('random byte strings (property, fixed seed)', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 256 }), decodesCanonicallyOrCodecError), {
      seed: SEED,
      numRuns: 4000,
    });
  });

  it('random byte strings starting with a map header (property, fixed seed)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0xa0, max: 0xbf }), fc.uint8Array({ maxLength: 128 }), (head, tail) =>
        decodesCanonicallyOrCodecError(concatBytes(Uint8Array.of(head), tail)),
      ),
      { seed: SEED + 1, numRuns: 2000 },
    );
  });

  it('valid frames with random byte mutations (property, fixed seed)', () => {
    const frames = MESSAGE_TYPES.filter((type) => type !== 'new-view').map((type) =>
      encodeMessage(examples[type]),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...frames),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        (frame, mutations) => {
          const mutated = Uint8Array.from(frame);
          for (const [position, value] of mutations) mutated[position % mutated.length] = value;
          decodesCanonicallyOrCodecError(mutated);
        },
      ),
      { seed: SEED + 2, numRuns: 3000 },
    );
  });

  it('deeply nested arrays and maps (a few kilobytes from a peer) are a CodecError, not a RangeError', () => {
    // cborg decodes recursively, so some depth exhausts the stack; where exactly depends on how far
    // the JIT has optimised it. Walking the depth up finds that point from both sides.
    const nestedArrays = (depth: number) => {
      const frame = new Uint8Array(depth + 1).fill(0x81);
      frame[depth] = 0x00;
      return frame;
    };
    const nestedMaps = (depth: number) => {
      const frame = new Uint8Array(depth * 3 + 1);
      for (let i = 0; i < depth; i++) frame.set([0xa1, 0x61, 0x61], i * 3);
      return frame;
    };
    const outcomes = new Set<string>();
    for (let depth = 1_000; depth <= 12_000; depth += 250) {
      for (const frame of [nestedArrays(depth), nestedMaps(depth)]) {
        outcomes.add(codecErrorCode(() => decodeMessage(frame)));
      }
    }
    // Shallow nestings decode and fail the schema; the deepest exceed cborg's stack.
    expect([...outcomes].sort()).toEqual(['MALFORMED_CBOR', 'UNKNOWN_TYPE']);
  });
});
