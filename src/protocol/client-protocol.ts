/**
 * Frames on the client protocol (client ↔ one replica), besides REQUEST and REPLY which are PBFT
 * messages: read-only queries and status. Strictly decoded like every other frame.
 */

import { CodecError, decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { readBoolean, readBytes, readLiteral, readMap, readUint } from '../codec/schema.ts';
import { invariant } from '../util/assert.ts';
import {
  encodeMessage,
  type Message,
  OPERATION_SIZE_MAX_BYTES,
  PUBLIC_KEY_BYTES,
  RESULT_SIZE_MAX_BYTES,
  readMessage,
} from './messages.ts';

/** Client frames are small: a request, a query or a status probe. */
export const CLIENT_FRAME_SIZE_MAX_BYTES = 4 * 1024;

export interface QueryFrame {
  type: 'query';
  /** Chosen by the client to match the answer to the question. */
  id: number;
  op: Uint8Array;
}

export interface StatusFrame {
  type: 'status';
  id: number;
}

export interface QueryResultFrame {
  type: 'query-result';
  id: number;
  replica: number;
  view: number;
  lastExecuted: number;
  result: Uint8Array;
}

export interface StatusResultFrame {
  type: 'status-result';
  id: number;
  replica: number;
  view: number;
  primary: number;
  viewChangeInProgress: boolean;
  lastExecuted: number;
  stableCheckpoint: number;
  peersConnected: number;
}

/**
 * Why a replica will not order (or did not execute) a request. The first three are final: the
 * client trusts them once f+1 replicas agree. 'busy' is not: the replica is full (admission
 * control) and kept nothing, so the client waits longer before it sends the request again.
 * 'unknown-client': the key has no account and t is above the sequence number it was ordered at.
 */
export type RequestErrorReason = 'bad-signature' | 'stale-request' | 'unknown-client' | 'busy';
export const REQUEST_ERROR_REASONS: readonly RequestErrorReason[] = [
  'bad-signature',
  'stale-request',
  'unknown-client',
  'busy',
];

/**
 * The floor a client may skip past on f+1 or more 'stale-request' refusals: the (f+1)-th highest
 * reported. Of f+1 reports one is a correct replica's, so f liars can only lower it (a retry),
 * never raise it above every correct replica's floor.
 */
export function vouchedFloor(reportedFloors: readonly number[], f: number): number {
  invariant(reportedFloors.length >= f + 1, 'a vouched floor needs f+1 reports');
  return [...reportedFloors].sort((a, b) => b - a)[f]!;
}

export interface RequestErrorFrame {
  type: 'request-error';
  replica: number;
  client: Uint8Array;
  t: number;
  reason: RequestErrorReason;
  /**
   * For 'stale-request', the client's floor as this replica knows it: no request numbered at or
   * below it can execute. 0 for every other reason.
   */
  lastExecutedT: number;
}

export type ClientToReplica = Extract<Message, { type: 'request' }> | QueryFrame | StatusFrame;
export type ReplicaToClient =
  | Extract<Message, { type: 'reply' }>
  | QueryResultFrame
  | StatusResultFrame
  | RequestErrorFrame;

export function encodeClientFrame(frame: ClientToReplica | ReplicaToClient): Uint8Array {
  if (frame.type === 'request' || frame.type === 'reply') return encodeMessage(frame);
  return encodeCanonical({ ...frame });
}

function peekType(bytes: Uint8Array, maxBytes: number): { value: unknown; type: string } {
  const value = decodeCanonical(bytes, maxBytes);
  const type =
    typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['type'] : undefined;
  return {
    value,
    type: readLiteral(type, 'frame.type', [
      'request',
      'reply',
      'query',
      'status',
      'query-result',
      'status-result',
      'request-error',
    ]),
  };
}

export function decodeClientToReplica(bytes: Uint8Array): ClientToReplica {
  const { value, type } = peekType(bytes, CLIENT_FRAME_SIZE_MAX_BYTES);
  switch (type) {
    case 'request': {
      const message = readMessage(value);
      if (message.type !== 'request')
        throw new CodecError('UNKNOWN_TYPE', 'frame type and message type disagree');
      return message;
    }
    case 'query': {
      const fields = readMap(value, 'query', ['type', 'id', 'op']);
      return {
        type,
        id: readUint(fields['id'], 'query.id'),
        op: readBytes(fields['op'], 'query.op', undefined, OPERATION_SIZE_MAX_BYTES),
      };
    }
    case 'status': {
      const fields = readMap(value, 'status', ['type', 'id']);
      return { type, id: readUint(fields['id'], 'status.id') };
    }
    default:
      throw new CodecError('UNKNOWN_TYPE', `a client may not send ${type}`);
  }
}

export function decodeReplicaToClient(bytes: Uint8Array): ReplicaToClient {
  const { value, type } = peekType(bytes, CLIENT_FRAME_SIZE_MAX_BYTES);
  switch (type) {
    case 'reply': {
      const message = readMessage(value);
      if (message.type !== 'reply')
        throw new CodecError('UNKNOWN_TYPE', 'frame type and message type disagree');
      return message;
    }
    case 'query-result': {
      const fields = readMap(value, 'query-result', [
        'type',
        'id',
        'replica',
        'view',
        'lastExecuted',
        'result',
      ]);
      return {
        type,
        id: readUint(fields['id'], 'id'),
        replica: readUint(fields['replica'], 'replica'),
        view: readUint(fields['view'], 'view'),
        lastExecuted: readUint(fields['lastExecuted'], 'lastExecuted'),
        result: readBytes(fields['result'], 'result', undefined, RESULT_SIZE_MAX_BYTES),
      };
    }
    case 'request-error': {
      const fields = readMap(value, 'request-error', [
        'type',
        'replica',
        'client',
        't',
        'reason',
        'lastExecutedT',
      ]);
      return {
        type,
        replica: readUint(fields['replica'], 'replica'),
        client: readBytes(fields['client'], 'client', PUBLIC_KEY_BYTES),
        t: readUint(fields['t'], 't'),
        reason: readLiteral(fields['reason'], 'reason', REQUEST_ERROR_REASONS),
        lastExecutedT: readUint(fields['lastExecutedT'], 'lastExecutedT'),
      };
    }
    case 'status-result': {
      const fields = readMap(value, 'status-result', [
        'type',
        'id',
        'replica',
        'view',
        'primary',
        'viewChangeInProgress',
        'lastExecuted',
        'stableCheckpoint',
        'peersConnected',
      ]);
      return {
        type,
        id: readUint(fields['id'], 'id'),
        replica: readUint(fields['replica'], 'replica'),
        view: readUint(fields['view'], 'view'),
        primary: readUint(fields['primary'], 'primary'),
        viewChangeInProgress: readBoolean(fields['viewChangeInProgress'], 'viewChangeInProgress'),
        lastExecuted: readUint(fields['lastExecuted'], 'lastExecuted'),
        stableCheckpoint: readUint(fields['stableCheckpoint'], 'stableCheckpoint'),
        peersConnected: readUint(fields['peersConnected'], 'peersConnected'),
      };
    }
    default:
      throw new CodecError('UNKNOWN_TYPE', `a replica may not send ${type}`);
  }
}
