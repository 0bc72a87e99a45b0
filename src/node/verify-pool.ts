/**
 * Signature verification on worker threads, so a replica with cores to itself verifies on all of
 * them instead of one: the event loop keeps decoding, stepping and sending while the workers check
 * signatures. Everything asked for in one turn of the event loop (a burst of client requests, the
 * requests of a PRE-PREPARE) leaves as one message per worker, so the cost of crossing threads is
 * paid per burst, not per signature.
 */
import { Worker } from 'node:worker_threads';

/** Below this many signatures a burst goes to one worker: splitting would cost more than it saves. */
const SPLIT_SIGNATURES_MIN = 16;
// The sources run as .ts; the package's compiled copy (dist/, see tsconfig.build.json) as .js, and a
// URL string is not an import specifier the compiler rewrites.
const WORKER_FILE = new URL(
  import.meta.url.endsWith('.ts') ? './verify-worker.ts' : './verify-worker.js',
  import.meta.url,
);

export interface VerifyPoolOptions {
  /** The worker's module (tests substitute a failing one). */
  workerFile?: URL;
}

export interface SignatureCheck {
  signature: Uint8Array;
  message: Uint8Array;
  publicKey: Uint8Array;
}

/** Main thread → worker. */
export interface VerifyJob {
  id: number;
  signatures: Uint8Array[];
  messages: Uint8Array[];
  publicKeys: Uint8Array[];
}

/** Worker → main thread: valid[i] is 1 when signature i verified. */
export interface VerifyAnswer {
  id: number;
  valid: Uint8Array;
}

interface Waiting {
  checks: readonly SignatureCheck[];
  resolve(valid: boolean[]): void;
  reject(error: Error): void;
}

interface PoolWorker {
  worker: Worker;
  /** False once the thread failed or exited: it gets no more work. */
  alive: boolean;
  /** Jobs sent and not answered, by id. */
  jobs: Map<number, { resolve(valid: Uint8Array): void; reject(error: Error): void }>;
  /** Signatures sent and not answered: the least loaded worker gets the next small burst. */
  signaturesInFlight: number;
}

export class VerifyPool {
  readonly #workers: PoolWorker[];
  #nextJobId = 1;
  /** Asked for during this turn of the event loop; sent together at its end. */
  #waiting: Waiting[] = [];
  #flushScheduled = false;
  #closed = false;

  private constructor(workers: PoolWorker[]) {
    this.#workers = workers;
  }

  /** Worker threads still running. */
  get size(): number {
    return this.#alive().length;
  }

  #alive(): PoolWorker[] {
    return this.#workers.filter((entry) => entry.alive);
  }

  /** Start `size` worker threads and wait until each is running. */
  static async start(size: number, options: VerifyPoolOptions = {}): Promise<VerifyPool> {
    const workers = await Promise.all(
      Array.from({ length: size }, async () => {
        const worker = new Worker(options.workerFile ?? WORKER_FILE);
        await new Promise<void>((resolve, reject) => {
          worker.once('online', resolve);
          worker.once('error', reject);
        });
        return { worker, alive: true, jobs: new Map(), signaturesInFlight: 0 } satisfies PoolWorker;
      }),
    );
    const pool = new VerifyPool(workers);
    for (const entry of workers) pool.#watch(entry);
    return pool;
  }

  #watch(entry: PoolWorker): void {
    entry.worker.on('message', (answer: VerifyAnswer) => {
      const job = entry.jobs.get(answer.id);
      if (job === undefined) return;
      entry.jobs.delete(answer.id);
      job.resolve(answer.valid);
    });
    // A failed thread takes no more work; what it held fails, and callers check it elsewhere.
    const fail = (error: Error): void => {
      entry.alive = false;
      for (const job of entry.jobs.values()) job.reject(error);
      entry.jobs.clear();
    };
    entry.worker.on('error', fail);
    entry.worker.on('exit', (code) => {
      if (!this.#closed) fail(new Error(`a verification worker exited (code ${code})`));
    });
  }

  /** Whether each signature is valid, in order. Rejects only if a worker fails (a bug, not bad input). */
  verify(checks: readonly SignatureCheck[]): Promise<boolean[]> {
    if (this.#closed) return Promise.reject(new Error('the verification pool is closed'));
    if (this.size === 0) return Promise.reject(new Error('every verification worker has failed'));
    if (checks.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ checks, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    const checks = waiting.flatMap((entry) => entry.checks);
    const alive = this.#alive();
    if (alive.length === 0) {
      const error = new Error('every verification worker has failed');
      for (const entry of waiting) entry.reject(error);
      return;
    }
    // Small bursts go whole to the least loaded worker; larger ones are split, at least
    // SPLIT_SIGNATURES_MIN signatures a part.
    const partCount = Math.max(1, Math.min(alive.length, Math.floor(checks.length / SPLIT_SIGNATURES_MIN)));
    const workers =
      partCount === 1
        ? [alive.reduce((best, entry) => (entry.signaturesInFlight < best.signaturesInFlight ? entry : best))]
        : alive.slice(0, partCount);
    const answers = workers.map((worker, index) =>
      this.#send(
        worker,
        checks.slice(
          Math.floor((index * checks.length) / partCount),
          Math.floor(((index + 1) * checks.length) / partCount),
        ),
      ),
    );
    Promise.all(answers).then(
      (valids) => {
        const all = valids.flatMap((valid) => Array.from(valid, (byte) => byte === 1));
        let offset = 0;
        for (const entry of waiting) {
          entry.resolve(all.slice(offset, offset + entry.checks.length));
          offset += entry.checks.length;
        }
      },
      (error: Error) => {
        for (const entry of waiting) entry.reject(error);
      },
    );
  }

  #send(entry: PoolWorker, checks: readonly SignatureCheck[]): Promise<Uint8Array> {
    const id = this.#nextJobId++;
    const job: VerifyJob = {
      id,
      signatures: checks.map((check) => check.signature),
      messages: checks.map((check) => check.message),
      publicKeys: checks.map((check) => check.publicKey),
    };
    entry.signaturesInFlight += checks.length;
    return new Promise<Uint8Array>((resolve, reject) => {
      const done = (): void => {
        entry.signaturesInFlight -= checks.length;
      };
      entry.jobs.set(id, {
        resolve: (valid) => {
          done();
          resolve(valid);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      });
      entry.worker.postMessage(job);
    });
  }

  /** Stop the workers; checks not yet answered fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new Error('the verification pool is closed');
    for (const entry of this.#waiting) entry.reject(error);
    this.#waiting = [];
    await Promise.all(
      this.#workers.map(async (entry) => {
        for (const job of entry.jobs.values()) job.reject(error);
        entry.jobs.clear();
        await entry.worker.terminate();
      }),
    );
  }
}
