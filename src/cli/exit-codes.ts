/** Exit codes of the `pbft` command; scripts and the acceptance checks rely on them. */
export const EXIT_OK = 0;
/** Anything unexpected. */
export const EXIT_FAILURE = 1;
/** Bad command-line arguments. */
export const EXIT_USAGE = 2;
/** A configuration, key or genesis file that cannot be used. */
export const EXIT_CONFIG = 3;
/** The cluster could not be reached, or did not answer in time. */
export const EXIT_UNREACHABLE = 4;
/** The cluster ordered the transfer and rejected it. */
export const EXIT_REJECTED = 5;
/** A replica's storage is damaged (records lost or garbled): it must not run on that data. */
export const EXIT_STORAGE_DAMAGED = 6;

/** An error the CLI reports as one line on stderr, with its exit code. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.exitCode = exitCode;
  }
}
