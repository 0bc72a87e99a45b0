/** Command-line helpers shared by the scripts that parse their options with node:util parseArgs. */

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
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < min) {
    usage(`--${name} must be an integer >= ${min}, got "${value}"`);
  }
  return Number(value);
}
