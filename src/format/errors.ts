import { S3Error } from '../errors.ts';

/** Why stored bytes were refused. See docs/FORMAT.md section 4. */
export type FormatErrorReason =
  | 'BadMagic'
  | 'UnsupportedVersion'
  | 'HeaderTruncated'
  | 'HeaderMalformed'
  | 'HeaderAuthFailed'
  | 'ChunkAuthFailed'
  | 'UnexpectedEOF'
  | 'TrailingData'
  | 'InvalidCiphertextSize'
  | 'OidMismatch'
  | 'DekErased';

/**
 * A format failure. S3 code `IntegrityError` (500), except `DekErased` which is `KeyRevoked` (403).
 * `reason` is stable and asserted by tests; the message never carries key material.
 */
export class FormatError extends S3Error {
  readonly reason: FormatErrorReason;
  constructor(reason: FormatErrorReason, message: string) {
    super(reason === 'DekErased' ? 'KeyRevoked' : 'IntegrityError', `${reason}: ${message}`, { Reason: reason });
    this.name = 'FormatError';
    this.reason = reason;
  }
}

export const isFormatError = (e: unknown, reason?: FormatErrorReason): e is FormatError =>
  e instanceof FormatError && (reason === undefined || e.reason === reason);
