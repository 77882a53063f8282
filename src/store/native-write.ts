/**
 * A large single PUT through the native data plane (issue #22; src/engine/dataplane.ts, native/dataplane.c): the
 * client's plaintext goes from its socket to a backend PUT's socket through the addon's `seal` mode on a thread of
 * its own (docs/FORMAT.md 2.2: a DEK per block, chunk AADs), the prefix (2.1) written first by JavaScript.
 *
 * Write order as the Node path's (docs/DESIGN.md "Write order"): the caller (ObjectStore.putNative) has written the
 * header, final (its checksums are the declared ones, which the pump verifies before the commit: a mismatch ends it
 * before the last chunk, so nothing commits); the data PUT is the commit. Its request
 * carries the exact Content-Length, so a body cut short — the client sent fewer bytes, disconnected, or anything
 * failed — ends the pump before its last bytes and the backend connection is closed: a store that drops a body cut
 * short (the only ones rawPut opens: MinIO, S3) commits nothing, and the header goes again.
 */
import { S3Error } from '../errors.ts';
import type { Backend, PutOptions, RawPut } from '../backend/types.ts';
import { holdSocket, nativeTransfers, pump, type PumpError } from '../engine/dataplane.ts';
import { cryptoMeter, datasetIdOf, type HeaderFields } from '../engine/index.ts';
import { AAD_MAGIC, encodePrefix } from '../format/layout.ts';
import type net from 'node:net';

/** What the plaintext must hash to (checked by the pump before the last chunk leaves). */
export interface NativeVerify {
  /** A SigV4 signed payload's SHA-256. */
  sha256?: Buffer;
  /** The declared x-amz-checksum-crc32. */
  crc32?: number;
  /** The Content-MD5. */
  md5?: Buffer;
  /**
   * An aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER) of this many bytes on the wire: the pump reads its framing
   * and checks its x-amz-checksum-crc32 trailer, if any; the CRC-32 it computed comes back with the answer. -1: inside
   * HTTP chunked transfer coding (no Content-Length), whose framing the pump reads too and which ends the body.
   */
  awsChunked?: number;
  /** ... whose chunks are signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): each chunk's signature is checked by the pump. */
  signedChunks?: ChunkSigning;
  /** ... and a signed trailer ends it (-PAYLOAD-TRAILER): its signature and x-amz-checksum-crc32 checked too. */
  signedTrailer?: boolean;
}

/** What a signed aws-chunked body's chunk signatures chain from: the request's SigV4 signing key and signature. */
export interface ChunkSigning {
  signingKey: Buffer;
  seedSignature: string;
  amzDate: string;
  scope: string;
}

/** The client's side, given by the server: its socket's reads are stopped, `pre` is what node had already read. */
export interface NativeUploadSource {
  fd: number;
  socket: net.Socket;
  /** Body bytes node read before the reads were stopped (at most the body). */
  pre: Buffer;
  /** control[0] != 0 stops the pump (the server sets it when the client socket is destroyed). */
  control: Int32Array;
  /** A wait for either side longer than this fails. */
  idleMs: number;
  verify?: NativeVerify;
}

/** Why a native upload failed, as the server needs to know it: whether the client's body was read whole. */
export class NativeUploadError extends S3Error {
  /** The client went away or sent less than its Content-Length: nothing to answer. */
  clientGone = false;
}

/**
 * Seal `size` bytes from `src` into the data object bucket/key (the header's oid and DEKs, `opts` the backend PUT's
 * size, metadata and condition). Resolves with the backend's answer to a complete body; throws otherwise, after
 * the backend connection was closed (nothing committed).
 */
export function sealToBackend(
  backend: Backend,
  bucket: string,
  key: string,
  header: HeaderFields,
  size: number,
  opts: PutOptions,
  src: NativeUploadSource,
): Promise<{ etag: string; versionId?: string; crc32?: number }> {
  return sealPart((first) => backend.rawPut!(bucket, key, opts, first), header, 1, header.parts[0].deks as Buffer[], size, src, 'put');
}

/**
 * Seal `size` bytes from `src` as part `partNumber` of the object `fields` names (its dataset, oid and block size;
 * one DEK per block in `deks`) into the backend request `open` starts with the bytes it is given: the prefix
 * (docs/FORMAT.md 2.1) for part 1, nothing for the others. Resolves with the backend's answer to a complete body;
 * throws otherwise, after the backend connection was closed (nothing committed). `op` names it in
 * lakecrypt_native_transfers_total.
 */
export async function sealPart(
  open: (first: Buffer) => Promise<RawPut | null>,
  fields: Pick<HeaderFields, 'dataset' | 'oid' | 'blockSize'>,
  partNumber: number,
  partDeks: Buffer[],
  size: number,
  src: NativeUploadSource,
  op: 'put' | 'part' = 'part',
): Promise<{ etag: string; versionId?: string; crc32?: number }> {
  const up = await open(partNumber === 1 ? encodePrefix(fields.oid) : Buffer.alloc(0));
  if (!up) throw new S3Error('ServiceUnavailable', 'backend error: the native upload could not be opened');
  const control = src.control;
  const held = holdSocket(up.socket, () => Atomics.store(control, 0, 1));
  const deks = Buffer.concat(partDeks);
  let run: Promise<{ crc32?: number }>;
  try {
    run = pump({
      inFd: src.fd,
      outFd: up.fd,
      length: size,
      mode: 'seal',
      deks,
      aadPrefix: Buffer.concat([AAD_MAGIC, datasetIdOf(fields.dataset), fields.oid]),
      partNumber,
      blockSize: fields.blockSize,
      pre: src.pre,
      control,
      idleMs: src.idleMs,
      sha256: src.verify?.sha256,
      md5: src.verify?.md5,
      crc32: src.verify?.crc32,
      awsChunked: src.verify?.awsChunked !== undefined,
      inputLength: src.verify?.awsChunked === -1 ? undefined : src.verify?.awsChunked,
      httpChunked: src.verify?.awsChunked === -1,
      signedTrailer: src.verify?.signedTrailer,
      ...chunkSigningOf(src.verify?.signedChunks),
    });
  } catch (e) {
    run = Promise.reject(e instanceof Error ? e : new Error(String(e)));
  } finally {
    deks.fill(0); // the pump copied them
  }
  nativeTransfers[op]++;
  let crc32: number | undefined;
  try {
    ({ crc32 } = await run);
  } catch (e) {
    const backendFailed = held.destroyRequested();
    held.release();
    // the body is not whole at the backend: closing its connection is what keeps it from committing
    const refused = up.answered();
    up.close();
    if (refused) {
      // the store answered before the body was whole (a failed condition, a refusal): its answer is the error
      const err = await up.result().then(
        () => new S3Error('InternalError', 'backend accepted a body cut short'),
        (x: unknown) => x,
      );
      throw err;
    }
    // the backend's socket failed (node asked to destroy it): the store's side, not the client's
    if (backendFailed) throw new NativeUploadError('ServiceUnavailable', 'backend error: network: the connection failed during the upload');
    throw pumpError(e as PumpError);
  }
  held.release();
  try {
    const r = await up.result();
    cryptoMeter.encrypt += size;
    return { ...r, crc32 };
  } finally {
    up.close();
  }
}

/** The pump's options for signed chunks (it copies the key and wipes its copy when it ends). */
function chunkSigningOf(c: ChunkSigning | undefined): { chunkKey?: Buffer; chunkSeed?: Buffer; chunkDateScope?: Buffer } {
  if (!c) return {};
  return { chunkKey: c.signingKey, chunkSeed: Buffer.from(c.seedSignature, 'latin1'), chunkDateScope: Buffer.from(`${c.amzDate}\n${c.scope}`, 'latin1') };
}

function pumpError(e: PumpError): NativeUploadError {
  switch (e.code) {
    case 'UnexpectedEOF':
    case 'Stopped':
    case 'ECONNRESET': {
      // the client's side: its socket ended early or was destroyed (a reset on the backend's side is rare and
      // answers the same: nothing committed, the client's body not read whole)
      const err = new NativeUploadError('IncompleteBody');
      err.clientGone = true;
      return err;
    }
    case 'ETIMEDOUT':
      return new NativeUploadError('RequestTimeout', `the transfer made no progress: ${e.message}`);
    case 'XAmzContentSHA256Mismatch':
      return new NativeUploadError('XAmzContentSHA256Mismatch');
    case 'BadDigest':
      return new NativeUploadError('BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
    case 'BadContentMD5':
      return new NativeUploadError('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    // the aws-chunked framing's own refusals (native/dataplane.c: src/s3/chunked.ts's words)
    case 'IncompleteBody':
    case 'InvalidRequest':
      return new NativeUploadError(e.code, e.message);
    case 'InvalidTrailer':
      return new NativeUploadError('InvalidRequest', e.message);
    case 'SignatureDoesNotMatch':
      return new NativeUploadError('SignatureDoesNotMatch', e.message);
    default:
      return new NativeUploadError('InternalError', `native data plane: ${e.code ?? 'Error'}: ${e.message}`, {}, { cause: e });
  }
}
