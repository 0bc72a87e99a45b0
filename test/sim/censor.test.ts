/**
 * A primary that orders everyone but one client (`censor`): its core never sees that client's
 * requests, it proposes everyone else's promptly, and the view keeps executing batches. The
 * backups, which hold the censored request once the client retransmits it to them, replace it
 * anyway (the request timer waits for that request; other progress does not restart it), and the
 * request completes in a later view. The control run, the same seed with the liars honest,
 * never changes view: the view change is the lie's doing.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../src/sim/simulation.ts';

const SEEDS = [31, 32];

describe.each([
  { replicas: 4, liars: [0] },
  // The second liar is not the next primary: view 1 must be a correct one's.
  { replicas: 7, liars: [0, 3] },
] as const)('a primary that censors one client, n = $replicas', ({ replicas, liars }) => {
  it('is replaced while it keeps ordering the other clients, and the censored request completes', () => {
    for (const seed of SEEDS) {
      const options = {
        seed,
        replicas,
        byzantine: liars.length,
        byzantineReplicas: [...liars],
        behaviours: ['censor' as const],
        faults: false,
        crypto: 'ed25519' as const,
        clients: 4,
        requestsPerClient: 6,
        safetyPhaseMs: 4_000,
      };
      const replay = `seed ${seed}: npm run sim -- --seeds 1 --first-seed ${seed} --replicas ${replicas} (censor, liars ${liars.join(',')})`;
      const lying = runSimulation(options);
      expect(lying.violations, replay).toEqual([]);
      expect(lying.committed, replay).toBe(lying.requested);
      expect(lying.byzantine.map((liar) => liar.behaviour)).toEqual(liars.map(() => 'censor'));
      expect(lying.viewChanges, replay).toBeGreaterThanOrEqual(1);
      const control = runSimulation({ ...options, liarsHonest: true });
      expect(control.violations, replay).toEqual([]);
      expect(control.committed).toBe(control.requested);
      expect(control.viewChanges, `${replay}, liars honest`).toBe(0);
    }
  });
});
