/** Command-line helpers shared by the scripts (sim and chaos with node:util parseArgs, bench with commander). */

/** A decimal integer of at least `min`, or null. */
export function parseIntegerAtLeast(value: string, min: number): number | null {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) return null;
  return Number(value);
}

/**
 * An integer option: `fallback` when absent; otherwise a decimal integer of at least `min`, or
 * `usage` is called with a one-line message that says what to fix.
 */
export function integerOption(
  value: string | undefined,
  name: string,
  fallback: number,
  min: number,
  usage: (message: string) => never,
): number {
  if (value === undefined) return fallback;
  return parseIntegerAtLeast(value, min) ?? usage(`--${name} must be an integer >= ${min}, got "${value}"`);
}

/** A `--plot` file: a path ending in .svg (the only format the plot writes), or null. */
export function parseSvgPath(value: string): string | null {
  return /\.svg$/i.test(value) && value.length > '.svg'.length ? value : null;
}
