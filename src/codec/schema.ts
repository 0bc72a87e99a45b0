/**
 * Small strict readers for decoded CBOR values. Each reader either returns a correctly typed value
 * or throws a CodecError naming the field, so message decoders read like the schema they enforce.
 */
import { CodecError } from './cbor.ts';

export type Fields = Record<string, unknown>;

/** A plain map whose keys are exactly `expectedKeys` (no unknown, no missing fields). */
export function readMap(value: unknown, what: string, expectedKeys: readonly string[]): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new CodecError('WRONG_TYPE', `${what}: expected a map`);
  }
  const fields = value as Fields;
  for (const key of Object.keys(fields)) {
    if (!expectedKeys.includes(key)) throw new CodecError('UNKNOWN_FIELD', `${what}: unknown field "${key}"`);
  }
  for (const key of expectedKeys) {
    if (!Object.hasOwn(fields, key)) throw new CodecError('MISSING_FIELD', `${what}: missing field "${key}"`);
  }
  return fields;
}

export function readUint(value: unknown, what: string, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CodecError('WRONG_TYPE', `${what}: expected a non-negative integer`);
  }
  if (value > max) throw new CodecError('OUT_OF_RANGE', `${what}: ${value} exceeds ${max}`);
  return value;
}

export function readBytes(value: unknown, what: string, length?: number, maxLength?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CodecError('WRONG_TYPE', `${what}: expected bytes`);
  if (length !== undefined && value.length !== length) {
    throw new CodecError('WRONG_LENGTH', `${what}: expected ${length} bytes, got ${value.length}`);
  }
  if (maxLength !== undefined && value.length > maxLength) {
    throw new CodecError('WRONG_LENGTH', `${what}: ${value.length} bytes exceeds ${maxLength}`);
  }
  return value;
}

export function readString(value: unknown, what: string, maxLength = 256): string {
  if (typeof value !== 'string') throw new CodecError('WRONG_TYPE', `${what}: expected a string`);
  if (value.length > maxLength) throw new CodecError('WRONG_LENGTH', `${what}: longer than ${maxLength}`);
  return value;
}

export function readBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new CodecError('WRONG_TYPE', `${what}: expected a boolean`);
  return value;
}

export function readArray<T>(
  value: unknown,
  what: string,
  maxLength: number,
  readItem: (item: unknown, itemWhat: string) => T,
): T[] {
  if (!Array.isArray(value)) throw new CodecError('WRONG_TYPE', `${what}: expected an array`);
  if (value.length > maxLength) {
    throw new CodecError('WRONG_LENGTH', `${what}: ${value.length} items exceeds ${maxLength}`);
  }
  return value.map((item, index) => readItem(item, `${what}[${index}]`));
}

export function readLiteral<T extends string>(value: unknown, what: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new CodecError('UNKNOWN_TYPE', `${what}: expected one of ${allowed.join(', ')}`);
  }
  return value as T;
}
