export interface BatchTask {
  /** 32-byte DEK of the block. */
  key: Uint8Array;
  /** 65-byte chunk AAD with part and block set; chunk index and flags are filled per chunk. */
  aad: Uint8Array;
  /** Index within the block of the first chunk. */
  firstChunk: number;
  count: number;
  /** Plaintext length of the last chunk of the batch (all others are 65536). */
  lastLen: number;
  /** The last chunk of the batch is the last chunk of its part. */
  final: boolean;
  data: Uint8Array;
}
export interface OpenResult { data: Buffer; ok: number; failed: boolean }
export function sealBatch(t: BatchTask): Buffer;
export function openBatch(t: BatchTask): OpenResult;
