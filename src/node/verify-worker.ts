/**
 * A verification thread of a VerifyPool: checks ed25519 signatures with the same native, strict
 * verifier as the replica's event loop and answers with one byte per signature (1 = valid).
 */
import { parentPort } from 'node:worker_threads';
import { createVerifier } from '../crypto/index.ts';
import type { VerifyAnswer, VerifyJob } from './verify-pool.ts';

const verifier = createVerifier('native');
const port = parentPort;
if (port === null) throw new Error('verify-worker.ts runs as a worker thread of a VerifyPool');

port.on('message', (job: VerifyJob) => {
  const valid = new Uint8Array(job.signatures.length);
  for (let index = 0; index < valid.length; index++) {
    valid[index] = verifier.verify(job.signatures[index]!, job.messages[index]!, job.publicKeys[index]!)
      ? 1
      : 0;
  }
  const answer: VerifyAnswer = { id: job.id, valid };
  port.postMessage(answer, [valid.buffer]);
});
