/**
 * One catalogue of every error lakecrypt can answer with. Each entry has a stable S3 code and HTTP status;
 * the server maps an S3Error to an XML body in exactly one place (src/server/errors-response.ts).
 * Messages never contain secrets or key material.
 */
export const ERRORS = {
  // --- authentication / authorization
  AccessDenied: { status: 403, message: 'Access Denied.' },
  InvalidAccessKeyId: { status: 403, message: 'The AWS access key Id you provided does not exist in our records.' },
  SignatureDoesNotMatch: { status: 403, message: 'The request signature we calculated does not match the signature you provided.' },
  RequestTimeTooSkewed: { status: 403, message: 'The difference between the request time and the server\'s time is too large.' },
  XAmzContentSHA256Mismatch: { status: 400, message: 'The provided \'x-amz-content-sha256\' header does not match what was computed.' },
  AuthorizationHeaderMalformed: { status: 400, message: 'The authorization header is malformed.' },
  AuthorizationQueryParametersError: { status: 400, message: 'Error parsing the X-Amz-Credential parameter.' },
  ExpiredToken: { status: 400, message: 'The provided token has expired.' },
  KeyRevoked: { status: 403, message: 'The key protecting this data has been revoked.' },
  // --- buckets / objects
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist.' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchUpload: { status: 404, message: 'The specified multipart upload does not exist.' },
  NoSuchVersion: { status: 404, message: 'The specified version does not exist.' },
  BucketAlreadyOwnedByYou: { status: 409, message: 'Your previous request to create the named bucket succeeded and you already own it.' },
  BucketAlreadyExists: { status: 409, message: 'The requested bucket name is not available.' },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty.' },
  InvalidLocationConstraint: { status: 400, message: 'The specified location constraint is not valid.' },
  InvalidBucketName: { status: 400, message: 'The specified bucket is not valid.' },
  InvalidURI: { status: 400, message: 'Couldn\'t parse the specified URI.' },
  KeyTooLongError: { status: 400, message: 'Your key is too long.' },
  // --- request shape
  InvalidArgument: { status: 400, message: 'Invalid Argument.' },
  InvalidRequest: { status: 400, message: 'Invalid Request.' },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable.' },
  InvalidPartNumber: { status: 416, message: 'The requested partnumber is not satisfiable.' },
  InvalidPart: { status: 400, message: 'One or more of the specified parts could not be found.' },
  InvalidPartOrder: { status: 400, message: 'The list of parts was not in ascending order.' },
  EntityTooSmall: { status: 400, message: 'Your proposed upload is smaller than the minimum allowed object size.' },
  EntityTooLarge: { status: 400, message: 'Your proposed upload exceeds the maximum allowed object size.' },
  MalformedXML: { status: 400, message: 'The XML you provided was not well-formed or did not validate against our published schema.' },
  MissingContentLength: { status: 411, message: 'You must provide the Content-Length HTTP header.' },
  IncompleteBody: { status: 400, message: 'You did not provide the number of bytes specified by the Content-Length HTTP header.' },
  BadDigest: { status: 400, message: 'The Content-MD5 or checksum you specified did not match what we received.' },
  InvalidDigest: { status: 400, message: 'The Content-MD5 or checksum you specified is not valid.' },
  PreconditionFailed: { status: 412, message: 'At least one of the pre-conditions you specified did not hold.' },
  NotModified: { status: 304, message: 'Not Modified.' },
  MethodNotAllowed: { status: 405, message: 'The specified method is not allowed against this resource.' },
  NotImplemented: { status: 501, message: 'A header you provided implies functionality that is not implemented.' },
  RequestTimeout: { status: 400, message: 'Your socket connection to the server was not read from or written to within the timeout period.' },
  MaxMessageLengthExceeded: { status: 400, message: 'Your request was too big.' },
  MetadataTooLarge: { status: 400, message: 'Your metadata headers exceed the maximum allowed metadata size.' },
  // --- server side
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  ServiceUnavailable: { status: 503, message: 'Service is unable to handle request.' },
  SlowDown: { status: 503, message: 'Please reduce your request rate.' },
  KeyStateStale: { status: 503, message: 'The gateway cannot confirm the current revocation state; retry.' },
  // --- admin API only (not S3 codes: the admin API answers JSON)
  /** Too many failed admin logins from this source or for this access key. */
  TooManyRequests: { status: 429, message: 'Too many failed attempts; retry later.' },
  UnsupportedMediaType: { status: 415, message: 'This endpoint takes application/json.' },
  /** Stored data or header failed authentication: never served as data. */
  IntegrityError: { status: 500, message: 'The stored object failed an integrity check and was not served.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type S3ErrorCode = keyof typeof ERRORS;

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  /** Extra elements for the XML body (e.g. BucketName, Key). Never secrets. */
  readonly detail: Record<string, string>;
  /** For KeyRevoked: the level that refused ('cmk' is set where a CMK provider's refusal is met); metrics only. */
  revocation?: 'cmk' | 'kek' | 'dek';
  constructor(code: S3ErrorCode, message?: string, detail: Record<string, string> = {}, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'S3Error';
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = detail;
  }
}

export const isS3Error = (e: unknown, code?: S3ErrorCode): e is S3Error =>
  e instanceof S3Error && (code === undefined || e.code === code);
