/**
 * The pure parts of `npm run bench -- --attack BEHAVIOUR`: which behaviours exist and which replica
 * lies, what the replicas' /metrics say about their view, when the lying primary was replaced, how
 * many view changes a phase saw, and the goals a run is judged by.
 *
 * A run measures the same load twice, fault-free and then with one replica started with
 * `pbft node --byzantine BEHAVIOUR`, and relates the two: R = tx/s under attack ÷ tx/s fault-free.
 * With a client attack (CLIENT_ATTACKS) the second phase adds a hostile client to the load instead.
 * The goals (issue "Smart liars", throughput under attack): a lying backup or a hostile client costs
 * at most a fifth of the throughput (R ≥ 0.8); a lying primary is replaced within a bound and costs at most half
 * (R ≥ 0.5).
 */
import { InvalidArgumentError } from 'commander';
import {
  BYZANTINE_BEHAVIOURS,
  type ByzantineBehaviour,
  isByzantineBehaviour,
} from '../../src/byzantine/strategies.ts';

export type LiarRole = 'primary' | 'backup';
export const LIAR_ROLES: readonly LiarRole[] = ['primary', 'backup'];

/**
 * Attacks by a client rather than a replica: `hostile-client` (scripts/lib/hostile-client.ts, the
 * chaos runner's): fresh keys without accounts, bad signatures and oversized frames, as fast as a
 * client connection may send, to every replica, beside the honest load.
 */
export const CLIENT_ATTACKS = ['hostile-client'] as const;
export type ClientAttack = (typeof CLIENT_ATTACKS)[number];
/** What `--attack` names: a replica's behaviour or a client's attack. */
export type Attack = ByzantineBehaviour | ClientAttack;
/** Who attacks: a replica in one of LIAR_ROLES, or a client. */
export type AttackerRole = LiarRole | 'client';

export function isClientAttack(attack: Attack): attack is ClientAttack {
  return (CLIENT_ATTACKS as readonly string[]).includes(attack);
}

/** A lying backup may cost at most this share of the fault-free throughput: R ≥ 0.8. */
export const R_MIN_BACKUP = 0.8;
/** A hostile client, likewise: R ≥ 0.8. */
export const R_MIN_CLIENT = 0.8;
/** A lying primary, replaced in time, may cost at most half: R ≥ 0.5. */
export const R_MIN_PRIMARY = 0.5;
/**
 * A lying primary must be replaced within this many base view-change timeouts
 * (`viewChangeTimeoutTicks` × `tickMs`) of the start of the measured attack phase: the target the
 * chaos runner holds a primary fault to (scripts/chaos.ts, PRIMARY_RECOVERY_TIMEOUTS).
 */
export const REPLACEMENT_TIMEOUTS_MAX = 3;

/**
 * Behaviours whose lie is in what the primary proposes, or whether it proposes at all: run as the
 * primary of view 0 unless `--liar backup` says otherwise. Every other behaviour lies as well (or
 * only) as a backup, and runs as one by default.
 */
const PRIMARY_SIDE_BEHAVIOURS: ReadonlySet<ByzantineBehaviour> = new Set<ByzantineBehaviour>([
  'silent',
  'equivocate',
  'bad-digest',
  'bad-signature',
  'censor',
  'empty-batches',
  'big-batches',
  'slow-primary',
]);

/**
 * The `--attack` argument: one of BYZANTINE_BEHAVIOURS or CLIENT_ATTACKS, or a one-line message
 * listing them.
 */
export function parseAttackBehaviour(value: string): Attack {
  if (isByzantineBehaviour(value)) return value;
  if ((CLIENT_ATTACKS as readonly string[]).includes(value)) return value as ClientAttack;
  throw new InvalidArgumentError(
    `BEHAVIOUR must be one of ${[...BYZANTINE_BEHAVIOURS, ...CLIENT_ATTACKS].join(', ')}`,
  );
}

export function defaultLiarRole(behaviour: ByzantineBehaviour): LiarRole;
export function defaultLiarRole(attack: Attack): AttackerRole;
export function defaultLiarRole(attack: Attack): AttackerRole {
  if (isClientAttack(attack)) return 'client';
  return PRIMARY_SIDE_BEHAVIOURS.has(attack) ? 'primary' : 'backup';
}

/** The primary of view 0 (replica 0), or the backup furthest from it in the primary rotation (n-1). */
export function liarReplica(role: LiarRole, replicas: number): number {
  return role === 'primary' ? 0 : replicas - 1;
}

/** What one replica's /metrics says about its view. */
export interface ViewReading {
  view: number;
  primary: number;
  viewChangeInProgress: boolean;
  /** pbft_view_changes_total over every reason: view changes this replica started. */
  viewChangesStarted: number;
}

function gauge(metrics: string, name: string): number | null {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics);
  if (match === null) return null;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : null;
}

/** The view gauges and view-change counter in Prometheus text, or null if one is missing. */
export function parseViewMetrics(metrics: string): ViewReading | null {
  const view = gauge(metrics, 'pbft_view');
  const primary = gauge(metrics, 'pbft_primary');
  const inProgress = gauge(metrics, 'pbft_view_change_in_progress');
  const counts = [...metrics.matchAll(/^pbft_view_changes_total\{[^}]*\} (\S+)$/gm)].map((m) => Number(m[1]));
  if (view === null || primary === null || inProgress === null || counts.length === 0) return null;
  return {
    view,
    primary,
    viewChangeInProgress: inProgress !== 0,
    viewChangesStarted: counts.reduce((sum, count) => sum + count, 0),
  };
}

/** Every replica's reading at one moment (null: its /metrics did not answer in time). */
export interface ViewSample {
  /** Milliseconds since the measured phase began (negative during a warm-up). */
  atMs: number;
  replicas: Array<ViewReading | null>;
}

/**
 * When the liar stopped being the primary: the first sample in which 2f+1 correct replicas are in
 * one view, not changing views, whose primary is another replica. The liar's own word does not
 * count. Null if that never happened.
 */
export function liarReplacedAtMs(samples: readonly ViewSample[], liar: number, f: number): number | null {
  for (const sample of samples) {
    const settled = new Map<number, number>();
    for (const [id, reading] of sample.replicas.entries()) {
      if (id === liar || reading === null || reading.viewChangeInProgress || reading.primary === liar)
        continue;
      settled.set(reading.view, (settled.get(reading.view) ?? 0) + 1);
    }
    if ([...settled.values()].some((count) => count >= 2 * f + 1)) return sample.atMs;
  }
  return null;
}

/**
 * View changes during the samples: the most that any correct replica started between its first
 * and its last reading (pbft_view_changes_total counts each view a replica moves to, whether by
 * its own timeout, by joining f+1 others or by catching up).
 */
export function viewChangesDuring(samples: readonly ViewSample[], liar: number): number {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  for (const sample of samples) {
    for (const [id, reading] of sample.replicas.entries()) {
      if (id === liar || reading === null) continue;
      if (!first.has(id)) first.set(id, reading.viewChangesStarted);
      last.set(id, reading.viewChangesStarted);
    }
  }
  return Math.max(0, ...[...last].map(([id, count]) => count - first.get(id)!));
}

export interface Goal {
  name: string;
  pass: boolean;
}

export interface AttackJudgement {
  /** tx/s under attack ÷ tx/s fault-free, to 3 decimals (0 when nothing committed fault-free). */
  R: number;
  goals: Goal[];
  pass: boolean;
}

export interface AttackFigures {
  role: AttackerRole;
  txPerSecFaultFree: number;
  txPerSecUnderAttack: number;
  /** Seconds from the start of the measured attack phase until the liar was replaced; null: never. */
  replacedAfterS: number | null;
  /** The replacement bound for a lying primary, in seconds. */
  replacementBoundS: number;
}

/**
 * R and the goals: R ≥ 0.8 for a lying backup or a hostile client; replaced within the bound and
 * R ≥ 0.5 for a primary.
 */
export function judgeAttack(figures: AttackFigures): AttackJudgement {
  const R =
    figures.txPerSecFaultFree > 0
      ? Math.round((1000 * figures.txPerSecUnderAttack) / figures.txPerSecFaultFree) / 1000
      : 0;
  const goals: Goal[] =
    figures.role === 'backup'
      ? [{ name: `R >= ${R_MIN_BACKUP}`, pass: R >= R_MIN_BACKUP }]
      : figures.role === 'client'
        ? [{ name: `R >= ${R_MIN_CLIENT}`, pass: R >= R_MIN_CLIENT }]
        : [
            {
              name: `replaced within ${figures.replacementBoundS} s`,
              pass: figures.replacedAfterS !== null && figures.replacedAfterS <= figures.replacementBoundS,
            },
            { name: `R >= ${R_MIN_PRIMARY}`, pass: R >= R_MIN_PRIMARY },
          ];
  return { R, goals, pass: goals.every((goal) => goal.pass) };
}
