/**
 * Assertions stay on in production (TigerBeetle style): a broken invariant in a consensus
 * protocol is a bug that must stop the replica loudly rather than let it sign something wrong.
 */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
