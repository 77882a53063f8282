export const CHUNK_SIZE: 65536;
export const TAG_SIZE: 16;
export const NONCE_SIZE: 12;
export const AAD_SIZE: 65;
export const AAD_OFF: { readonly datasetId: 4; readonly oid: 36; readonly part: 52; readonly block: 56; readonly chunk: 60; readonly flags: 64 };
export const FLAG_LAST: 1;
export function chunkNonce(c: number): Buffer;
