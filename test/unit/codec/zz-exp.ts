import { CodecError } from '../../../src/codec/cbor.ts';
import { decodeMessage } from '../../../src/protocol/messages.ts';

Error.stackTraceLimit = 50;
const nested = (d: number) => {
  const b = new Uint8Array(d + 1).fill(0x81);
  b[d] = 0;
  return b;
};
let shown = 0;
const fails: number[] = [];
for (let depth = 4000; depth < 9000; depth += 1) {
  try {
    decodeMessage(nested(depth));
  } catch (e) {
    if (!(e instanceof CodecError)) {
      fails.push(depth);
      if (!shown++) {
        const s = (e as Error).stack!.split('\n');
        console.log(s.slice(0, 6).join('\n'));
        console.log(s.filter((l) => /cbor\.ts|messages\.ts/.test(l)).join('\n'));
      }
    }
  }
}
console.log(fails.length, fails.slice(0, 5), fails.slice(-5));
// now re-test fixed depths
for (const d of [4500, 5000, 6000, 7000]) {
  try {
    decodeMessage(nested(d));
  } catch (e) {
    console.log(d, e instanceof CodecError ? e.code : (e as Error).name);
  }
}
