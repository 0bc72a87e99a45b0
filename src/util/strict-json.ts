/**
 * A small strict JSON (RFC 8259) parser for configuration files.
 *
 * `JSON.parse` silently keeps the last of two duplicate keys and turns `1e3` or `1.0` into integers,
 * so a genesis file with a typo could quietly mint a different supply than its author read. This
 * parser reports duplicate keys with their position and keeps the source text of every number so
 * callers can insist on plain integer literals. Objects come back as null-prototype records so that a
 * key such as "__proto__" is just a key.
 */

/** Bounds recursion on hostile input; configuration files are a few levels deep. */
export const JSON_NESTING_DEPTH_MAX = 64;

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = { [key: string]: JsonValue };

/** A number as written in the source, e.g. "1e3"; `value` is what JSON.parse would give. */
export class JsonNumber {
  readonly text: string;
  readonly value: number;
  constructor(text: string) {
    this.text = text;
    this.value = Number(text);
  }
}

export type StrictJsonErrorCode = 'SYNTAX' | 'DUPLICATE_KEY' | 'TOO_DEEP';

export class StrictJsonError extends Error {
  override name = 'StrictJsonError';
  readonly code: StrictJsonErrorCode;
  /** 1-based position of the offending token. */
  readonly line: number;
  readonly column: number;
  /** Keys from the root to the object that holds the problem (for DUPLICATE_KEY: its parent). */
  readonly path: readonly string[];
  /** The duplicated key, for DUPLICATE_KEY. */
  readonly key: string | undefined;
  constructor(
    code: StrictJsonErrorCode,
    detail: string,
    position: { line: number; column: number },
    path: readonly string[],
    key?: string,
  ) {
    super(`line ${position.line} column ${position.column}: ${detail}`);
    this.code = code;
    this.line = position.line;
    this.column = position.column;
    this.path = path;
    this.key = key;
  }
}

const NUMBER_PATTERN = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

export function parseStrictJson(text: string): JsonValue {
  const parser = new Parser(text);
  parser.skipWhitespace();
  const value = parser.parseValue([], 0);
  parser.skipWhitespace();
  if (!parser.atEnd()) parser.fail('SYNTAX', 'unexpected text after the end of the document', []);
  return value;
}

class Parser {
  readonly text: string;
  offset = 0;

  constructor(text: string) {
    this.text = text;
  }

  atEnd(): boolean {
    return this.offset >= this.text.length;
  }

  skipWhitespace(): void {
    while (!this.atEnd() && WHITESPACE.has(this.text[this.offset]!)) this.offset++;
  }

  parseValue(path: readonly string[], depth: number): JsonValue {
    const char = this.text[this.offset];
    if (char === '{' || char === '[') {
      if (depth >= JSON_NESTING_DEPTH_MAX) {
        this.fail('TOO_DEEP', `nested deeper than ${JSON_NESTING_DEPTH_MAX} levels`, path);
      }
      return char === '{' ? this.parseObject(path, depth + 1) : this.parseArray(path, depth + 1);
    }
    if (char === '"') return this.parseString(path);
    if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) return this.parseNumber(path);
    for (const [literal, value] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (this.text.startsWith(literal, this.offset)) {
        this.offset += literal.length;
        return value;
      }
    }
    return this.fail('SYNTAX', char === undefined ? 'unexpected end of input' : 'expected a value', path);
  }

  parseObject(path: readonly string[], depth: number): JsonObject {
    const object: JsonObject = Object.create(null);
    this.offset++; // '{'
    this.skipWhitespace();
    if (this.consume('}')) return object;
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.offset] !== '"') this.fail('SYNTAX', 'expected a string key', path);
      const keyPosition = this.position();
      const key = this.parseString(path);
      if (Object.hasOwn(object, key)) {
        throw new StrictJsonError(
          'DUPLICATE_KEY',
          `duplicate key ${JSON.stringify(key)}`,
          keyPosition,
          path,
          key,
        );
      }
      this.skipWhitespace();
      if (!this.consume(':')) this.fail('SYNTAX', 'expected ":" after a key', path);
      this.skipWhitespace();
      object[key] = this.parseValue([...path, key], depth);
      this.skipWhitespace();
      if (this.consume('}')) return object;
      if (!this.consume(',')) this.fail('SYNTAX', 'expected "," or "}"', path);
    }
  }

  parseArray(path: readonly string[], depth: number): JsonValue[] {
    const array: JsonValue[] = [];
    this.offset++; // '['
    this.skipWhitespace();
    if (this.consume(']')) return array;
    for (;;) {
      this.skipWhitespace();
      array.push(this.parseValue([...path, String(array.length)], depth));
      this.skipWhitespace();
      if (this.consume(']')) return array;
      if (!this.consume(',')) this.fail('SYNTAX', 'expected "," or "]"', path);
    }
  }

  parseString(path: readonly string[]): string {
    this.offset++; // opening quote
    let out = '';
    for (;;) {
      const char = this.text[this.offset];
      if (char === undefined) this.fail('SYNTAX', 'unterminated string', path);
      if (char === '"') {
        this.offset++;
        return out;
      }
      if (char < ' ') this.fail('SYNTAX', 'control character in a string', path);
      if (char !== '\\') {
        out += char;
        this.offset++;
        continue;
      }
      const escapeChar = this.text[this.offset + 1];
      if (escapeChar === 'u') {
        const hex = this.text.slice(this.offset + 2, this.offset + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('SYNTAX', 'invalid \\u escape', path);
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.offset += 6;
      } else if (escapeChar !== undefined && Object.hasOwn(SIMPLE_ESCAPES, escapeChar)) {
        out += SIMPLE_ESCAPES[escapeChar]!;
        this.offset += 2;
      } else {
        this.fail('SYNTAX', 'invalid escape in a string', path);
      }
    }
  }

  parseNumber(path: readonly string[]): JsonNumber {
    NUMBER_PATTERN.lastIndex = this.offset;
    const match = NUMBER_PATTERN.exec(this.text);
    if (match === null) this.fail('SYNTAX', 'invalid number', path);
    this.offset += match[0].length;
    return new JsonNumber(match[0]);
  }

  consume(char: string): boolean {
    if (this.text[this.offset] !== char) return false;
    this.offset++;
    return true;
  }

  position(): { line: number; column: number } {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < this.offset; i++) {
      if (this.text[i] === '\n') {
        line++;
        lineStart = i + 1;
      }
    }
    return { line, column: this.offset - lineStart + 1 };
  }

  fail(code: StrictJsonErrorCode, detail: string, path: readonly string[]): never {
    throw new StrictJsonError(code, detail, this.position(), path);
  }
}
