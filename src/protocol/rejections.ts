/**
 * Every reason a replica rejects a message, as a closed list: the labels of
 * `pbft_invalid_messages_total{reason}` (and the simulator's rejection counts). The lists exist at
 * run time so that the metrics can show every label at 0 from the first scrape: an alert on
 * `rate(pbft_invalid_messages_total{reason="bad-signature"}[1m])` must see 0, not nothing.
 */

/** What is wrong with a checkpoint proof or a VIEW-CHANGE's certificates (certificates.ts). */
export const CERTIFICATE_REJECTIONS = [
  'checkpoint-proof-not-empty-at-genesis',
  'checkpoint-seq-not-on-interval',
  'checkpoint-proof-too-small',
  'checkpoint-proof-mismatch',
  'checkpoint-proof-duplicate-signer',
  'prepared-view-too-high',
  'prepared-not-from-primary',
  'prepared-outside-window',
  'prepared-too-few-prepares',
  'prepared-prepare-mismatch',
  'prepared-prepare-from-primary',
  'prepared-duplicate-seq',
  'replica-out-of-range',
] as const;
export type CertificateRejection = (typeof CERTIFICATE_REJECTIONS)[number];

/** Rules of the core (`Replica`) that an authenticated message broke, besides its certificates. */
const CORE_RULE_REJECTIONS = [
  'batch-too-large',
  'batch-too-many-bytes',
  'checkpoint-not-on-interval',
  'checkpoint-state-mismatch',
  'conflicting-pre-prepare',
  'digest-mismatch',
  'not-from-primary',
  'old-view',
  'outside-watermarks',
  'prepare-from-primary',
  'reply-sent-to-replica',
  'snapshot-digest-mismatch',
  'too-few-view-changes',
  'vote-for-other-digest',
  'view-change-for-other-view',
  'wrong-pre-prepares',
] as const;

/** A NEW-VIEW carrying a VIEW-CHANGE that fails a certificate check names which. */
type InvalidViewChange = `invalid-view-change:${CertificateRejection}`;

export type CoreRejectionReason =
  | (typeof CORE_RULE_REJECTIONS)[number]
  | CertificateRejection
  | InvalidViewChange;

/** Every reason the core can give, for the metrics. */
export const CORE_REJECTION_REASONS: readonly CoreRejectionReason[] = [
  ...CORE_RULE_REJECTIONS,
  ...CERTIFICATE_REJECTIONS,
  ...CERTIFICATE_REJECTIONS.map((reason): InvalidViewChange => `invalid-view-change:${reason}`),
];

/** Signature checks at the edge (verify.ts). */
export const SIGNATURE_REJECTIONS = ['unknown-replica', 'bad-signature'] as const;
export type SignatureRejection = (typeof SIGNATURE_REJECTIONS)[number];

/** A BATCH the replica did not ask for, or not with that digest (dropped before signature checks). */
export const BATCH_REJECTIONS = ['unsolicited-batch', 'digest-mismatch'] as const;
export type BatchRejection = (typeof BATCH_REJECTIONS)[number];

/**
 * Dropped at the edge before any signature check: an ordering message outside the watermarks (the
 * core's reason too), or a peer's CHECKPOINTs or VIEW-CHANGEs beyond a correct replica's rate.
 */
export const SCREEN_REJECTIONS = ['outside-watermarks', 'rate-limited'] as const;
export type ScreenRejection = (typeof SCREEN_REJECTIONS)[number];
