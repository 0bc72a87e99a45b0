import { CodecError } from '../../../src/codec/cbor.ts';
import { decodeMessage } from '../../../src/protocol/messages.ts';
const seen = new Map<string, number[]>();
for (let depth = 4000; depth < 9000; depth += 1) {
  for (const kind of ['arr', 'map']) {
    let b: Uint8Array;
    if (kind === 'arr') { b = new Uint8Array(depth + 1).fill(0x81); b[depth] = 0; }
    else { const parts: number[] = []; for (let i = 0; i < depth; i++) parts.push(0xa1, 0x61, 0x61); parts.push(0); b = Uint8Array.from(parts); }
    let r: string;
    try { decodeMessage(b); r = 'ok'; } catch (e) { r = e instanceof CodecError ? e.code : 'OTHER ' + (e as Error).name + ' ' + (e as Error).message; }
    const k = kind + ' ' + r; if (!seen.has(k)) seen.set(k, []); seen.get(k)!.push(depth);
  }
}
for (const [k, v] of seen) console.log(k, v.length, v[0], v[v.length - 1]);
