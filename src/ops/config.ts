/**
 * Gateway configuration: a YAML file (LAKECRYPT_CONFIG, default `config/lakecrypt.yaml` if present), validated
 * with zod, then overridden setting by setting from `LAKECRYPT_*` environment variables.
 *
 * One table (`SETTINGS`) is the single source of truth: every setting's path in the file, its environment
 * variable, its default, what a valid value looks like and its documentation. The zod schema, the env
 * overrides, docs/CONFIGURATION.md and config/lakecrypt.yaml are all derived from (and tested against) it.
 *
 * A wrong value throws a `ConfigError` whose message is ONE line naming the setting (and the env var) and what
 * was expected, e.g. `LAKECRYPT_PORT: expected an integer 1-65535 (or 0 for any free port), got "abc"`.
 * Secret values are never echoed in messages; use `redactConfig()` before logging a Config.
 */
import { isBucketName } from '../s3/names.ts';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';

// ---------------------------------------------------------------------------------------------------------
// Errors

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** Dotted setting path (`s3.endpoint`, `users[1].secretKey`), when the problem is about one setting. */
  readonly setting?: string;
  /** The environment variable of that setting. */
  readonly env?: string;
  constructor(message: string, opts: { setting?: string; env?: string } = {}) {
    // One line, always.
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
    this.setting = opts.setting;
    this.env = opts.env;
  }
}

/** One line for a configuration failure (ConfigError or anything thrown while loading); no stack frames. */
export function formatConfigError(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  const msg = err instanceof Error ? err.message : String(err);
  return `configuration: ${msg.split(/\r?\n/)[0]}`;
}

// ---------------------------------------------------------------------------------------------------------
// Value schemas

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const MIB = 1024 * 1024;
export const BLOCK_SIZE_UNIT = 65536;
export const BLOCK_SIZE_MAX = 8 * MIB;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
const str = (min = 1, max = 4096) => z.string().min(min).max(max);
const accessKeySchema = z.string().regex(/^[A-Za-z0-9._+=@-]{3,128}$/);
const secretKeySchema = z.string().min(8).max(128).regex(/^\S+$/);
const EXPECT_ACCESS_KEY = 'a string of 3-128 characters from A-Z a-z 0-9 . _ + = @ -';
const EXPECT_SECRET_KEY = 'a string of 8-128 non-blank characters';

const userSchema = z.strictObject({
  accessKey: accessKeySchema.meta({ expect: EXPECT_ACCESS_KEY }),
  secretKey: secretKeySchema.meta({ expect: EXPECT_SECRET_KEY }),
  buckets: z
    .array(z.string().refine((s) => s === '*' || isBucketName(s)).meta({ expect: 'a bucket name or "*"' }))
    .min(1)
    .meta({ expect: 'a non-empty array of bucket names ("*" = all buckets)' }),
  admin: z.boolean().optional().meta({ expect: 'true or false' }),
  tenant: z.string().regex(ID_RE).optional().meta({ expect: 'a tenant name (one of tenants[].name)' }),
});
export type UserConfig = z.infer<typeof userSchema>;

const CMK_KINDS = ['local', 'pkcs11', 'transit', 'awskms'] as const;
const EXPECT_CMK_KIND = '"local", "pkcs11", "transit" or "awskms"';
/**
 * A tenant CMK. `provider` names the kind (`kind` is the older name of the same field); the remaining fields are
 * the provider's own, checked by src/keys/providers.ts when the provider is built (an error names the CMK and
 * the field, never a value): pkcs11 {keyLabel?, token? (label), pin?}, transit {addr, token | tokenFile, key,
 * mount?}, awskms {keyId, region?, endpoint?}.
 */
const cmkSchema = z
  .strictObject({
    id: z.string().regex(ID_RE).meta({ expect: 'an id of 1-64 characters from A-Z a-z 0-9 _ -' }),
    provider: z.enum(CMK_KINDS).optional().meta({ expect: EXPECT_CMK_KIND }),
    kind: z.enum(CMK_KINDS).optional().meta({ expect: EXPECT_CMK_KIND }),
    keyLabel: str(1, 128).optional().meta({ expect: 'a key label of 1-128 characters' }),
    token: str(1, 4096).optional().meta({ expect: 'a token label (pkcs11) or a token (transit)' }),
    pin: str(1, 256).optional().meta({ expect: 'a PIN string' }),
    addr: str(1, 2048).optional().meta({ expect: 'the server address, http(s)://host:port' }),
    tokenFile: str(1, 4096).optional().meta({ expect: 'the path of a file holding the token' }),
    key: str(1, 128).optional().meta({ expect: 'a transit key name' }),
    mount: str(1, 128).optional().meta({ expect: 'a mount path such as "transit"' }),
    keyId: str(1, 2048).optional().meta({ expect: 'a KMS key id, key ARN or alias/...' }),
    region: str(1, 64).optional().meta({ expect: 'an AWS region such as eu-west-1' }),
    endpoint: str(1, 2048).optional().meta({ expect: 'an http(s):// KMS endpoint URL' }),
  })
  .refine((c) => (c.provider === undefined) !== (c.kind === undefined), { error: `expected "provider" (${EXPECT_CMK_KIND})`, path: ['provider'] })
  .transform(({ kind, ...c }) => ({ ...c, provider: (c.provider ?? kind)! }));
export type CmkConfig = z.infer<typeof cmkSchema>;

const datasetSchema = z.strictObject({
  name: z
    .string()
    .refine((s) => {
      const i = s.indexOf('/');
      const bucket = i < 0 ? s : s.slice(0, i);
      return isBucketName(bucket) && (i < 0 || s.length > i + 1);
    })
    .meta({ expect: '"bucket" or "bucket/prefix" with a valid bucket name' }),
  cmk: z.string().regex(ID_RE).optional().meta({ expect: 'a CMK id ("default" or one of cmks[].id)' }),
  rotateEveryDays: int(1, 36500).optional().meta({ expect: 'an integer number of days 1-36500' }),
  allowPlaintextRead: z.boolean().optional().meta({ expect: 'true or false' }),
});
export type DatasetConfig = z.infer<typeof datasetSchema>;

/** A tenant: its CMK, the buckets it owns from the start, and its admins (admin API credentials scoped to it). */
const tenantSchema = z.strictObject({
  name: z.string().regex(ID_RE).meta({ expect: 'a tenant name of 1-64 characters from A-Z a-z 0-9 _ -' }),
  cmk: z.string().regex(ID_RE).optional().meta({ expect: 'a CMK id ("default" or one of cmks[].id)' }),
  buckets: z.array(z.string().refine((s) => isBucketName(s)).meta({ expect: 'a bucket name' })).optional().meta({ expect: 'an array of bucket names' }),
  admins: z
    .array(z.strictObject({ accessKey: accessKeySchema.meta({ expect: EXPECT_ACCESS_KEY }), secretKey: secretKeySchema.meta({ expect: EXPECT_SECRET_KEY }) }))
    .optional()
    .meta({ expect: 'an array of {accessKey, secretKey}' }),
});
export type TenantConfig = z.infer<typeof tenantSchema>;

// ---------------------------------------------------------------------------------------------------------
// The settings table

type Kind = 'int' | 'number' | 'string' | 'bool' | 'json';

export interface SettingDef<S extends z.ZodType = z.ZodType> {
  /** Dotted path in the YAML file / Config object. */
  path: string;
  env: string;
  kind: Kind;
  schema: S;
  /** Human-readable description of a valid value: "expected <expect>". */
  expect: string;
  /** Default (undefined: unset unless given). */
  default?: unknown;
  /** Documented value for the default when it is computed (e.g. generated credentials). */
  defaultDoc?: string;
  secret?: boolean;
  /** One or two sentences; rendered in docs/CONFIGURATION.md and as the comment in config/lakecrypt.yaml. */
  doc: string;
  /** Example value shown (commented out) in config/lakecrypt.yaml for unset settings. */
  example?: unknown;
}

function def<S extends z.ZodType>(d: SettingDef<S>): SettingDef<S> {
  return d;
}

export const SETTINGS = {
  // --- listeners
  port: def({
    path: 'port', env: 'LAKECRYPT_PORT', kind: 'int', schema: int(0, 65535), default: 9100,
    expect: 'an integer 1-65535 (or 0 for any free port)',
    doc: 'TCP port of the S3 API listener. 9100 by default, so it does not clash with MinIO on 9000.',
  }),
  host: def({
    path: 'host', env: 'LAKECRYPT_HOST', kind: 'string', schema: str(1, 255), default: '127.0.0.1',
    expect: 'a host name or IP address',
    doc: 'Address the S3 API listens on. Use 0.0.0.0 (or ::) to accept connections from other machines.',
  }),
  adminPort: def({
    path: 'adminPort', env: 'LAKECRYPT_ADMIN_PORT', kind: 'int', schema: int(0, 65535), default: 9101,
    expect: 'an integer 1-65535 (or 0 for any free port)',
    doc: 'TCP port of the admin listener (/healthz, /readyz, /metrics, key-management API).',
  }),
  adminHost: def({
    path: 'adminHost', env: 'LAKECRYPT_ADMIN_HOST', kind: 'string', schema: str(1, 255), default: '127.0.0.1',
    expect: 'a host name or IP address',
    doc: 'Address the admin listener binds to. Keep it on a private interface.',
  }),
  kmsPort: def({
    path: 'kmsPort', env: 'LAKECRYPT_KMS_PORT', kind: 'int', schema: int(0, 65535).optional(),
    expect: 'an integer 1-65535 (or 0 for any free port)', example: 9102,
    doc: 'TCP port of the KMS endpoint: the Vault/OpenBao Transit API subset that Parquet modular encryption clients call to wrap column keys under dataset KEKs (docs/clients.md "Column encryption"). Unset: off. It listens on `host` with the S3 port\'s TLS settings. Not the `kms.*` group, which configures an AWS KMS key as a CMK.',
  }),
  dataDir: def({
    path: 'dataDir', env: 'LAKECRYPT_DATA_DIR', kind: 'string', schema: str(1), default: './data',
    expect: 'a directory path',
    doc: 'Gateway state directory (generated credentials, local CMK key files, fs backend data). Relative paths are resolved against the working directory.',
  }),
  // --- client credentials
  accessKey: def({
    path: 'accessKey', env: 'LAKECRYPT_ACCESS_KEY', kind: 'string', schema: accessKeySchema.optional(),
    expect: EXPECT_ACCESS_KEY, defaultDoc: 'generated', example: 'lakecrypt-admin',
    doc: 'Access key of the root (admin, all buckets) S3 user. If neither accessKey nor secretKey is set, a pair is generated once and kept (mode 0600) in <dataDir>/credentials.json.',
  }),
  secretKey: def({
    path: 'secretKey', env: 'LAKECRYPT_SECRET_KEY', kind: 'string', schema: secretKeySchema.optional(),
    expect: EXPECT_SECRET_KEY, secret: true, defaultDoc: 'generated', example: 'change-me-please',
    doc: 'Secret key of the root S3 user. Secret: prefer LAKECRYPT_SECRET_KEY or LAKECRYPT_SECRET_KEY_FILE over the file.',
  }),
  region: def({
    path: 'region', env: 'LAKECRYPT_REGION', kind: 'string', schema: z.string().regex(/^[a-z0-9-]{1,64}$/),
    default: 'us-east-1', expect: 'a region name such as "us-east-1"',
    doc: 'Region clients sign their requests for (SigV4 credential scope).',
  }),
  users: def({
    path: 'users', env: 'LAKECRYPT_USERS', kind: 'json', schema: z.array(userSchema), default: [],
    expect: 'an array of {accessKey, secretKey, buckets, admin?}', secret: true,
    example: [{ accessKey: 'analytics', secretKey: 'change-me-analytics', buckets: ['lake', 'reports'], admin: false }],
    doc: 'Additional S3 users: {accessKey, secretKey, buckets: [names] ("*" = all), admin?: true to use the admin API}. Env: a JSON array.',
  }),
  sigv2: def({
    path: 'sigv2', env: 'LAKECRYPT_SIGV2', kind: 'bool', schema: z.boolean(), default: true,
    expect: 'true or false',
    doc: 'Accept AWS Signature Version 2 on the S3 port (the Authorization "AWS key:signature" header and the AWSAccessKeyId/Signature/Expires presigned URLs boto3 makes by default), as MinIO does. It is weaker than SigV4: HMAC-SHA1, the body is not signed (only its Content-MD5 when sent), and a presigned URL may be valid for any length of time (SigV4: at most 7 days). false: refused as on S3 (400 InvalidRequest, "the authorization mechanism you have provided is not supported").',
  }),
  // --- backend
  backend: def({
    path: 'backend', env: 'LAKECRYPT_BACKEND', kind: 'string', schema: z.enum(['fs', 's3']), default: 'fs',
    expect: '"fs" or "s3"',
    doc: 'Where ciphertext is stored: "fs" (a directory under dataDir, for development) or "s3" (any S3-compatible store).',
  }),
  's3.endpoint': def({
    path: 's3.endpoint', env: 'LAKECRYPT_S3_ENDPOINT', kind: 'string',
    schema: z.url({ protocol: /^https?$/ }).optional(), expect: 'an http(s) URL', example: 'http://127.0.0.1:9000',
    doc: 'Endpoint URL of the S3 backend (e.g. MinIO). Unset: AWS S3 for s3.region.',
  }),
  's3.accessKey': def({
    path: 's3.accessKey', env: 'LAKECRYPT_S3_ACCESS_KEY', kind: 'string', schema: str(1, 256).optional(),
    expect: 'a non-empty string', example: 'minio-user',
    doc: 'Access key for the S3 backend: every backend request is SigV4-signed with this pair (there is no AWS default credential chain). Unset: an empty key, for a store that takes any.',
  }),
  's3.secretKey': def({
    path: 's3.secretKey', env: 'LAKECRYPT_S3_SECRET_KEY', kind: 'string', schema: str(1, 256).optional(),
    expect: 'a non-empty string', secret: true, example: 'change-me-minio-password',
    doc: 'Secret key for the S3 backend. Secret.',
  }),
  's3.region': def({
    path: 's3.region', env: 'LAKECRYPT_S3_REGION', kind: 'string', schema: z.string().regex(/^[a-z0-9-]{1,64}$/),
    default: 'us-east-1', expect: 'a region name such as "us-east-1"',
    doc: 'Region of the S3 backend.',
  }),
  's3.forcePathStyle': def({
    path: 's3.forcePathStyle', env: 'LAKECRYPT_S3_PATH_STYLE', kind: 'bool', schema: z.boolean(), default: true,
    expect: 'true or false',
    doc: 'Kept for older configuration files, without effect: backend requests are always path-style (http://host/bucket/key), which MinIO, S3 and the other stores tested take.',
  }),
  metaBucket: def({
    path: 'metaBucket', env: 'LAKECRYPT_META_BUCKET', kind: 'string',
    schema: z.string().refine(isBucketName), default: 'lakecrypt-meta', expect: 'a valid S3 bucket name',
    doc: 'Backend bucket holding object headers, the keystore, the audit log and job state. Refused as a user bucket name.',
  }),
  // --- keys
  cmk: def({
    path: 'cmk', env: 'LAKECRYPT_CMK', kind: 'string', schema: z.enum(CMK_KINDS), default: 'local',
    expect: EXPECT_CMK_KIND,
    doc: 'Provider of the default CMK (id "default"): "local" (0600 key files under <dataDir>/cmk), "pkcs11" (an HSM token), "transit" (a Vault/OpenBao Transit key) or "awskms" (an AWS KMS key); see docs/CMK-PROVIDERS.md.',
  }),
  'pkcs11.module': def({
    path: 'pkcs11.module', env: 'LAKECRYPT_PKCS11_MODULE', kind: 'string', schema: str(1).optional(),
    expect: 'the path of a PKCS#11 module (.so)', example: '/usr/lib/softhsm/libsofthsm2.so',
    doc: 'PKCS#11 module (shared library) path. Required when cmk or any cmks[].kind is "pkcs11".',
  }),
  'pkcs11.token': def({
    path: 'pkcs11.token', env: 'LAKECRYPT_PKCS11_TOKEN', kind: 'string', schema: str(1, 128).optional(),
    expect: 'a token label of 1-128 characters', example: 'lakecrypt',
    doc: 'Label of the PKCS#11 token holding the CMK. Required with cmk "pkcs11".',
  }),
  'pkcs11.pin': def({
    path: 'pkcs11.pin', env: 'LAKECRYPT_PKCS11_PIN', kind: 'string', schema: str(1, 256).optional(),
    expect: 'a PIN string', secret: true, example: 'change-me-1234',
    doc: 'User PIN of the PKCS#11 token. Secret: prefer LAKECRYPT_PKCS11_PIN or LAKECRYPT_PKCS11_PIN_FILE.',
  }),
  'transit.addr': def({
    path: 'transit.addr', env: 'LAKECRYPT_TRANSIT_ADDR', kind: 'string', schema: str(1, 2048).optional(),
    expect: 'the server address, http(s)://host:port', example: 'https://bao.example:8200',
    doc: 'Vault/OpenBao server of the default CMK. Required with cmk "transit".',
  }),
  'transit.token': def({
    path: 'transit.token', env: 'LAKECRYPT_TRANSIT_TOKEN', kind: 'string', schema: str(1, 4096).optional(),
    expect: 'a Vault/OpenBao token', secret: true,
    doc: 'Token lakecrypt presents to the Transit engine. Secret: LAKECRYPT_TRANSIT_TOKEN or LAKECRYPT_TRANSIT_TOKEN_FILE. Required with cmk "transit".',
  }),
  'transit.key': def({
    path: 'transit.key', env: 'LAKECRYPT_TRANSIT_KEY', kind: 'string', schema: str(1, 128).optional(),
    expect: 'a transit key name', example: 'lakecrypt',
    doc: 'Transit key (aes256-gcm96, not derived) that wraps the KEKs. Required with cmk "transit".',
  }),
  'transit.mount': def({
    path: 'transit.mount', env: 'LAKECRYPT_TRANSIT_MOUNT', kind: 'string', schema: str(1, 128), default: 'transit',
    expect: 'a mount path such as "transit"',
    doc: 'Mount path of the Transit engine.',
  }),
  'kms.keyId': def({
    path: 'kms.keyId', env: 'LAKECRYPT_KMS_KEY_ID', kind: 'string', schema: str(1, 2048).optional(),
    expect: 'a KMS key id, key ARN or alias/...', example: 'alias/lakecrypt',
    doc: 'AWS KMS key of the default CMK (its version 1). Required with cmk "awskms". Credentials: the standard AWS variables.',
  }),
  'kms.region': def({
    path: 'kms.region', env: 'LAKECRYPT_KMS_REGION', kind: 'string', schema: str(1, 64).optional(),
    expect: 'an AWS region such as eu-west-1', defaultDoc: 'AWS_REGION, else `us-east-1`',
    doc: 'Region of the KMS key.',
  }),
  'kms.endpoint': def({
    path: 'kms.endpoint', env: 'LAKECRYPT_KMS_ENDPOINT', kind: 'string', schema: str(1, 2048).optional(),
    expect: 'an http(s):// KMS endpoint URL', example: 'http://127.0.0.1:8080',
    doc: 'KMS endpoint override (a VPC endpoint, a KMS-compatible server); unset = AWS.',
  }),
  cmks: def({
    path: 'cmks', env: 'LAKECRYPT_CMKS', kind: 'json', schema: z.array(cmkSchema), default: [], secret: true,
    expect: 'an array of {id, provider, ...the provider\'s fields}',
    example: [
      { id: 'tenant-a', provider: 'pkcs11', keyLabel: 'tenant-a-cmk', token: 'lakecrypt' },
      { id: 'tenant-b', provider: 'transit', addr: 'https://bao.example:8200', tokenFile: '/run/secrets/bao-tenant-b', key: 'tenant-b' },
      { id: 'tenant-c', provider: 'awskms', keyId: 'alias/tenant-c', region: 'eu-west-1' },
    ],
    doc: 'Extra (tenant) CMKs that datasets can be bound to: {id, provider: local|pkcs11|transit|awskms, then the provider\'s fields: pkcs11 keyLabel?, token?, pin? (default pkcs11.*); transit addr, token or tokenFile, key, mount?; awskms keyId, region?, endpoint?} ("kind" is accepted for "provider"). Env: a JSON array.',
  }),
  datasets: def({
    path: 'datasets', env: 'LAKECRYPT_DATASETS', kind: 'json', schema: z.array(datasetSchema), default: [],
    expect: 'an array of {name, cmk?, rotateEveryDays?, allowPlaintextRead?}',
    example: [{ name: 'lake/finance', cmk: 'tenant-a', rotateEveryDays: 90, allowPlaintextRead: false }],
    doc: 'Datasets with their own KEKs: {name: "bucket" or "bucket/prefix" (longest prefix wins), cmk? (default "default"), rotateEveryDays?, allowPlaintextRead? (serve objects not written by lakecrypt as-is)}. Every bucket is a dataset anyway. Env: a JSON array.',
  }),
  tenants: def({
    path: 'tenants', env: 'LAKECRYPT_TENANTS', kind: 'json', schema: z.array(tenantSchema), default: [], secret: true,
    expect: 'an array of {name, cmk?, buckets?, admins?: [{accessKey, secretKey}]}',
    example: [{ name: 'acme', cmk: 'tenant-a', buckets: ['acme-lake'], admins: [{ accessKey: 'acme-admin', secretKey: 'change-me-acme-admin' }] }],
    doc: 'Tenants: {name, cmk (a CMK id, default "default"), buckets (owned from the start; a bucket created by a user naming the tenant is owned too), admins: [{accessKey, secretKey}] (admin API credentials scoped to the tenant)}. A user with "tenant" reaches only its tenant\'s buckets. Env: a JSON array.',
  }),
  // --- engine
  blockSize: def({
    path: 'blockSize', env: 'LAKECRYPT_BLOCK_SIZE', kind: 'int',
    schema: int(BLOCK_SIZE_UNIT, BLOCK_SIZE_MAX).refine((n) => n % BLOCK_SIZE_UNIT === 0),
    default: BLOCK_SIZE_MAX, expect: 'a multiple of 65536 between 65536 and 8388608 (bytes)',
    doc: 'Plaintext bytes per encryption block (one DEK each) for new objects. Multiple of 65536, at most 8 MiB.',
  }),
  cryptoThreads: def({
    path: 'cryptoThreads', env: 'LAKECRYPT_CRYPTO_THREADS', kind: 'int', schema: int(0, 64), default: 0,
    expect: 'an integer 0-64',
    doc: 'Worker threads for AES-GCM on large streams; 0 = on the main thread (faster on 2 cores: bench/results/crypto.md).',
  }),
  inlineHeaderMax: def({
    path: 'inlineHeaderMax', env: 'LAKECRYPT_INLINE_HEADER_MAX', kind: 'int', schema: int(0, 1536), default: 1536,
    expect: 'an integer 0-1536 (base64 characters)',
    doc: 'Small single-PUT objects keep their sealed header in the data object\'s metadata when it fits in this many base64 characters: one backend write per PUT, one read per cold GET (docs/FORMAT.md 2.5, data format 2). 0 = every header in the meta bucket (format 1). Versioned buckets always use the meta bucket.',
  }),
  dataPlane: def({
    path: 'dataPlane', env: 'LAKECRYPT_DATA_PLANE', kind: 'string', schema: z.enum(['auto', 'node']), default: 'auto',
    expect: 'auto or node',
    doc: 'Where large object bodies move: auto = through the native data plane (native/dataplane.c, built with gcc and node\'s headers) for GETs of an encrypted object (whole, Range or partNumber) of 1 MiB or more, single PUTs over 8 MiB and multipart parts of 1 MiB or more whose only checks are a signed payload SHA-256, a Content-MD5 and a CRC32 (declared, or in the trailer of an unsigned aws-chunked body with a Content-Length; the pump verifies them), over plain TCP with a plain-http backend, when the addon loaded; node = always through Node streams.',
  }),
  keyCacheTtlMs: def({
    path: 'keyCacheTtlMs', env: 'LAKECRYPT_KEY_CACHE_TTL_MS', kind: 'int', schema: int(0, 86_400_000),
    default: 60000, expect: 'an integer 0-86400000 (milliseconds)',
    doc: 'How long unwrapped KEKs and header plaintext stay cached (0 disables the cache).',
  }),
  keyCacheSize: def({
    path: 'keyCacheSize', env: 'LAKECRYPT_KEY_CACHE_SIZE', kind: 'int', schema: int(1, 10_000_000),
    default: 1024, expect: 'an integer 1-10000000', doc: 'Maximum number of cached key entries.',
  }),
  epochPollMs: def({
    path: 'epochPollMs', env: 'LAKECRYPT_EPOCH_POLL_MS', kind: 'int', schema: int(50, 60000), default: 250,
    expect: 'an integer 50-60000 (milliseconds)',
    doc: 'How often keystore/epoch is polled; bounds how fast revocations by another gateway are seen.',
  }),
  revocationBoundMs: def({
    path: 'revocationBoundMs', env: 'LAKECRYPT_REVOCATION_BOUND_MS', kind: 'int', schema: int(100, 600000), default: 1000,
    expect: 'an integer 100-600000 (milliseconds)',
    doc: 'The revocation bound: a gateway hands out keys only while its last confirmed read of keystore/epoch started at most this long ago, else it answers 503 KeyStateStale (and /readyz goes unready); a revocation made through any gateway is denied by every live gateway within this bound after the call returns.',
  }),
  rewrapRatePerSec: def({
    path: 'rewrapRatePerSec', env: 'LAKECRYPT_REWRAP_RATE', kind: 'number', schema: z.number().min(0).max(1e9),
    default: 0, expect: 'a number >= 0 (headers per second; 0 = unlimited)',
    doc: 'Rate limit of the header walk of the re-wrap job — a re-key, or the one-time reseal of the format-1 headers of a dataset; a plain re-wrap moves header keys only (0 = unlimited).',
  }),
  // --- logging
  logLevel: def({
    path: 'logLevel', env: 'LAKECRYPT_LOG_LEVEL', kind: 'string',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info',
    expect: 'one of fatal, error, warn, info, debug, trace, silent',
    doc: 'Minimum level of the JSON log (stdout).',
  }),
  accessLog: def({
    path: 'accessLog', env: 'LAKECRYPT_ACCESS_LOG', kind: 'bool', schema: z.boolean(), default: true,
    expect: 'true or false', doc: 'Log one line per S3 request (operation, bucket, key, status, bytes, duration).',
  }),
  // --- TLS
  'tls.cert': def({
    path: 'tls.cert', env: 'LAKECRYPT_TLS_CERT', kind: 'string', schema: str(1).optional(),
    expect: 'the path of a PEM certificate file', example: '/etc/lakecrypt/tls/cert.pem',
    doc: 'PEM certificate (chain) for HTTPS on the S3 listener. Set together with tls.key; unset = plain HTTP.',
  }),
  'tls.key': def({
    path: 'tls.key', env: 'LAKECRYPT_TLS_KEY', kind: 'string', schema: str(1).optional(),
    expect: 'the path of a PEM private key file', example: '/etc/lakecrypt/tls/key.pem',
    doc: 'PEM private key for tls.cert.',
  }),
  // --- HTTP limits
  headersTimeoutMs: def({
    path: 'headersTimeoutMs', env: 'LAKECRYPT_HEADERS_TIMEOUT_MS', kind: 'int', schema: int(1000, 3_600_000),
    default: 30000, expect: 'an integer 1000-3600000 (milliseconds)',
    doc: 'Time allowed to receive the request headers (slowloris protection).',
  }),
  idleTimeoutMs: def({
    path: 'idleTimeoutMs', env: 'LAKECRYPT_IDLE_TIMEOUT_MS', kind: 'int', schema: int(0, 3_600_000),
    default: 60000, expect: 'an integer 0-3600000 (milliseconds; 0 = none)',
    doc: 'A connection with no bytes moving for this long is closed (also keep-alive idle time).',
  }),
  requestTimeoutMs: def({
    path: 'requestTimeoutMs', env: 'LAKECRYPT_REQUEST_TIMEOUT_MS', kind: 'int', schema: int(0, 86_400_000),
    default: 0, expect: 'an integer 0-86400000 (milliseconds; 0 = none)',
    doc: 'Maximum time to receive a whole request, body included. 0 = none (large uploads are bounded by idleTimeoutMs instead).',
  }),
  shutdownGraceMs: def({
    path: 'shutdownGraceMs', env: 'LAKECRYPT_SHUTDOWN_GRACE_MS', kind: 'int', schema: int(0, 3_600_000),
    default: 10000, expect: 'an integer 0-3600000 (milliseconds)',
    doc: 'On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for this long, then close.',
  }),
  maxHeaderBytes: def({
    path: 'maxHeaderBytes', env: 'LAKECRYPT_MAX_HEADER_BYTES', kind: 'int', schema: int(8192, 1_048_576),
    default: 16384, expect: 'an integer 8192-1048576 (bytes)',
    doc: 'Maximum total size of the request line and headers.',
  }),
  maxConnections: def({
    path: 'maxConnections', env: 'LAKECRYPT_MAX_CONNECTIONS', kind: 'int', schema: int(1, 1_000_000),
    default: 4096, expect: 'an integer 1-1000000',
    doc: 'Most connections the S3 port holds open at once; one more is closed unanswered until another ends. Bounds the sockets and memory idle, slow or hostile clients can pin.',
  }),
  // --- response headers
  objectCsp: def({
    path: 'objectCsp', env: 'LAKECRYPT_OBJECT_CSP', kind: 'string', schema: z.string().max(1024).regex(/^[\x20-\x7e]*$/),
    default: 'sandbox', expect: 'a Content-Security-Policy value of printable ASCII (at most 1024 characters), or "off" / "" for none',
    doc: 'Content-Security-Policy sent on every S3-port response, so that a browser opening an object URL (a presigned link to an uploaded HTML or SVG file) runs none of its scripts as the gateway\'s origin; X-Content-Type-Options: nosniff is always sent. Users who serve web assets from a bucket set a policy of their own (e.g. "default-src \'self\'"), or "off" (or "" in the file) to send none.',
  }),
  // --- key deletion
  keyDeletionWaitSeconds: def({
    path: 'keyDeletionWaitSeconds', env: 'LAKECRYPT_KEY_DELETION_WAIT_SECONDS', kind: 'int', schema: int(1, 315_360_000),
    default: 604800, expect: 'an integer 1-315360000 (seconds)',
    doc: 'Waiting period of `keys destroy` and `cmk destroy` (local/pkcs11/transit CMKs): the version is pending destruction (reads refused, cancellable) until it is due; an API call may ask for a longer wait, never a shorter one.',
  }),
} as const;

export type SettingPath = keyof typeof SETTINGS;
type Out<K extends SettingPath> = z.output<(typeof SETTINGS)[K]['schema']>;

const S = SETTINGS;
/** The schema of the (merged, defaults-filled) configuration. Strict: unknown keys are errors. */
export const ConfigSchema = z.strictObject({
  port: S.port.schema,
  host: S.host.schema,
  adminPort: S.adminPort.schema,
  adminHost: S.adminHost.schema,
  kmsPort: S.kmsPort.schema,
  dataDir: S.dataDir.schema,
  accessKey: S.accessKey.schema,
  secretKey: S.secretKey.schema,
  region: S.region.schema,
  users: S.users.schema,
  sigv2: S.sigv2.schema,
  backend: S.backend.schema,
  s3: z.strictObject({
    endpoint: S['s3.endpoint'].schema,
    accessKey: S['s3.accessKey'].schema,
    secretKey: S['s3.secretKey'].schema,
    region: S['s3.region'].schema,
    forcePathStyle: S['s3.forcePathStyle'].schema,
  }),
  metaBucket: S.metaBucket.schema,
  cmk: S.cmk.schema,
  pkcs11: z.strictObject({
    module: S['pkcs11.module'].schema,
    token: S['pkcs11.token'].schema,
    pin: S['pkcs11.pin'].schema,
  }),
  transit: z.strictObject({
    addr: S['transit.addr'].schema,
    token: S['transit.token'].schema,
    key: S['transit.key'].schema,
    mount: S['transit.mount'].schema,
  }),
  kms: z.strictObject({
    keyId: S['kms.keyId'].schema,
    region: S['kms.region'].schema,
    endpoint: S['kms.endpoint'].schema,
  }),
  cmks: S.cmks.schema,
  datasets: S.datasets.schema,
  tenants: S.tenants.schema,
  blockSize: S.blockSize.schema,
  cryptoThreads: S.cryptoThreads.schema,
  inlineHeaderMax: S.inlineHeaderMax.schema,
  dataPlane: S.dataPlane.schema,
  keyCacheTtlMs: S.keyCacheTtlMs.schema,
  keyCacheSize: S.keyCacheSize.schema,
  epochPollMs: S.epochPollMs.schema,
  revocationBoundMs: S.revocationBoundMs.schema,
  rewrapRatePerSec: S.rewrapRatePerSec.schema,
  logLevel: S.logLevel.schema,
  accessLog: S.accessLog.schema,
  tls: z.strictObject({ cert: S['tls.cert'].schema, key: S['tls.key'].schema }),
  headersTimeoutMs: S.headersTimeoutMs.schema,
  idleTimeoutMs: S.idleTimeoutMs.schema,
  requestTimeoutMs: S.requestTimeoutMs.schema,
  shutdownGraceMs: S.shutdownGraceMs.schema,
  maxHeaderBytes: S.maxHeaderBytes.schema,
  maxConnections: S.maxConnections.schema,
  objectCsp: S.objectCsp.schema,
  keyDeletionWaitSeconds: S.keyDeletionWaitSeconds.schema,
});

/** Groups of settings (objects in the file). */
const GROUPS = ['s3', 'pkcs11', 'transit', 'kms', 'tls'] as const;

export type CredentialsSource =
  /** accessKey/secretKey came from the file or the environment. */
  | 'settings'
  /** read from <dataDir>/credentials.json (generated by an earlier start). */
  | 'stored'
  /** generated now and written to <dataDir>/credentials.json: the caller should print them once. */
  | 'generated'
  /** generated now but not persisted (loadConfig({ persistCredentials: false })). */
  | 'ephemeral';

export type Config = Omit<z.output<typeof ConfigSchema>, 'accessKey' | 'secretKey'> & {
  /** Always set after loading (given, stored or generated). */
  accessKey: string;
  secretKey: string;
  /** Where the configuration came from; not a setting. */
  meta: {
    configFile: string | null;
    credentials: CredentialsSource;
    credentialsFile: string;
    /** Non-fatal remarks (e.g. credentials.json readable by others) for the caller to log. */
    warnings: string[];
  };
};

// ---------------------------------------------------------------------------------------------------------
// Loading

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv | Record<string, string | undefined>;
  /** YAML file path. Overrides LAKECRYPT_CONFIG; `false` = no file at all (defaults + env only). */
  file?: string | false;
  /** Base for the default config path and relative paths (default process.cwd()). */
  cwd?: string;
  /** Write generated credentials to <dataDir>/credentials.json (default true). */
  persistCredentials?: boolean;
}

export const DEFAULT_CONFIG_FILE = 'config/lakecrypt.yaml';

type Origin = { from: 'file'; file: string } | { from: 'env'; env: string; raw: string } | { from: 'default' };

const SETTING_LIST: SettingDef[] = Object.values(SETTINGS);
const BY_ENV = new Map(SETTING_LIST.map((s) => [s.env, s]));
// Field names whose values are secrets (a `token` only outside PKCS#11, where it is a label: see redactConfig).
const SECRET_FIELDS = new Set(['secretKey', 'pin', 'token', 'sessionToken', 'secretAccessKey']);

function getAt(obj: unknown, p: readonly PropertyKey[]): unknown {
  let cur: unknown = obj;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function setAt(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = obj;
  for (const k of parts.slice(0, -1)) {
    if (cur[k] === undefined || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]] = value;
}

function show(value: unknown, secret: boolean): string {
  if (value === undefined || value === null) return 'nothing';
  if (secret) return 'a hidden value';
  if (typeof value === 'string') {
    const s = JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
    return s;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return 'an array';
  return 'an object';
}

function subPath(p: readonly PropertyKey[]): string {
  return p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('');
}

function closest(name: string, candidates: string[]): string | undefined {
  const d = (a: string, b: string) => {
    const m = a.length, n = b.length;
    const row = Array.from({ length: n + 1 }, (_, j) => j);
    for (let i = 1; i <= m; i++) {
      let prev = row[0];
      row[0] = i;
      for (let j = 1; j <= n; j++) {
        const tmp = row[j];
        row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
        prev = tmp;
      }
    }
    return row[n];
  };
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const dist = d(name, c);
    if (dist < bestD) { bestD = dist; best = c; }
  }
  return best;
}

class Loader {
  readonly origins = new Map<string, Origin>();
  constructor(readonly configFile: string | null) {}

  /** How to name a setting in a message: the env var if it came from there, else the path and the env var. */
  label(settingPath: string, sub = ''): string {
    const s = (SETTINGS as Record<string, SettingDef>)[settingPath];
    const o = this.origins.get(settingPath);
    if (o?.from === 'env') return `${o.env}${sub}`;
    if (o?.from === 'file') return `${settingPath}${sub} in ${o.file} (env ${s?.env})`;
    return s ? `${settingPath}${sub} (${s.env})` : `${settingPath}${sub}`;
  }

  fail(settingPath: string, what: string, sub = ''): never {
    const s = (SETTINGS as Record<string, SettingDef>)[settingPath];
    throw new ConfigError(`${this.label(settingPath, sub)}: ${what}`, { setting: settingPath + sub, env: s?.env });
  }
}

function readFileSetting(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`LAKECRYPT_CONFIG: cannot read config file ${file} (${code})`, { env: 'LAKECRYPT_CONFIG' });
  }
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    const msg = e.message.split('\n')[0];
    throw new ConfigError(`config file ${file}: invalid YAML${line ? ` at line ${line}` : ''}: ${msg}`, { env: 'LAKECRYPT_CONFIG' });
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`config file ${file}: expected a mapping of settings at the top level, got ${show(data, false)}`, { env: 'LAKECRYPT_CONFIG' });
  }
  return data as Record<string, unknown>;
}

/** Drop YAML nulls (`endpoint:` with no value) so they mean "unset". */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = dropNulls(x);
    return out;
  }
  return v;
}

function parseEnvValue(s: SettingDef, raw: string, loader: Loader): unknown {
  const t = raw.trim();
  switch (s.kind) {
    case 'int':
    case 'number':
      return /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(t) ? Number(t) : raw;
    case 'bool': {
      const l = t.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(l)) return true;
      if (['false', '0', 'no', 'off'].includes(l)) return false;
      return raw;
    }
    case 'json':
      try {
        return dropNulls(JSON.parse(t));
      } catch (e) {
        const why = s.secret ? 'not valid JSON' : `not valid JSON (${(e as Error).message.split('\n')[0]})`;
        return loader.fail(s.path, `expected a JSON array (${s.expect}), got ${why}`);
      }
    default:
      return raw;
  }
}

/**
 * Load, validate and return the configuration. Throws ConfigError (one-line message) on any wrong value.
 * Side effect: when no root credentials are configured, reads or creates <dataDir>/credentials.json (0600).
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const envOf = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };

  // 1. the file
  let configFile: string | null = null;
  if (opts.file !== false) {
    const explicit = opts.file ?? envOf('LAKECRYPT_CONFIG');
    if (explicit !== undefined) configFile = path.resolve(cwd, explicit);
    else {
      const dflt = path.resolve(cwd, DEFAULT_CONFIG_FILE);
      if (fs.existsSync(dflt)) configFile = dflt;
    }
  }
  const loader = new Loader(configFile);
  const raw: Record<string, unknown> = configFile ? (dropNulls(readFileSetting(configFile)) as Record<string, unknown>) : {};
  if (configFile) {
    for (const s of SETTING_LIST) {
      if (getAt(raw, s.path.split('.')) !== undefined) loader.origins.set(s.path, { from: 'file', file: configFile });
    }
  }

  // 2. environment overrides: LAKECRYPT_X, or LAKECRYPT_X_FILE naming a file that holds the value (any setting:
  // docker secrets and Kubernetes secret volumes hold access keys and URLs beside the secrets). An empty
  // LAKECRYPT_X counts as unset, so a compose file can blank a variable and give its _FILE instead.
  for (const s of SETTING_LIST) {
    let value = envOf(s.env);
    let envName = s.env;
    if (value === undefined) {
      const fileVar = `${s.env}_FILE`;
      const p = envOf(fileVar);
      if (p !== undefined) {
        try {
          value = fs.readFileSync(path.resolve(cwd, p), 'utf8').replace(/\r?\n$/, '');
        } catch (e) {
          throw new ConfigError(`${fileVar}: cannot read ${p} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { setting: s.path, env: fileVar });
        }
        envName = fileVar;
      }
    }
    if (value === undefined) continue;
    loader.origins.set(s.path, { from: 'env', env: envName, raw: value });
    if (s.path.includes('.')) {
      const group = s.path.split('.')[0];
      if (raw[group] !== undefined && (typeof raw[group] !== 'object' || Array.isArray(raw[group]))) raw[group] = {};
    }
    setAt(raw, s.path, parseEnvValue(s, value, loader));
  }

  // 3. defaults
  for (const s of SETTING_LIST) {
    if (s.default !== undefined && getAt(raw, s.path.split('.')) === undefined) {
      setAt(raw, s.path, structuredClone(s.default));
    }
  }
  for (const g of GROUPS) if (raw[g] === undefined) raw[g] = {};

  // 4. schema
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues;
    // Count further problems on other settings only (one bad value can fail several checks).
    const top = (i: z.core.$ZodIssue) => (i.code === 'unrecognized_keys' ? `?${i.path.join('.')}.${i.keys.join()}` : i.path.slice(0, 2).join('.'));
    const others = new Set(issues.map(top).filter((t) => t !== top(issues[0]))).size;
    throw issueToError(issues[0], raw, loader, others + 1);
  }
  const cfg = parsed.data;

  // 5. rules across settings
  crossCheck(cfg, loader, cwd);

  // 6. credentials
  const dataDir = path.resolve(cwd, cfg.dataDir);
  const credentialsFile = path.join(dataDir, 'credentials.json');
  const warnings: string[] = [];
  let credentials: CredentialsSource = 'settings';
  let accessKey = cfg.accessKey;
  let secretKey = cfg.secretKey;
  if (accessKey === undefined || secretKey === undefined) {
    const got = loadOrCreateCredentials(credentialsFile, opts.persistCredentials ?? true, warnings);
    ({ accessKey, secretKey } = got);
    credentials = got.source;
  }
  if (cfg.users.some((u) => u.accessKey === accessKey)) {
    const i = cfg.users.findIndex((u) => u.accessKey === accessKey);
    loader.fail('users', 'duplicates the root accessKey', `[${i}].accessKey`);
  }
  cfg.tenants.forEach((t, i) => {
    const j = (t.admins ?? []).findIndex((a) => a.accessKey === accessKey);
    if (j >= 0) loader.fail('tenants', 'duplicates the root accessKey', `[${i}].admins[${j}].accessKey`);
  });

  return {
    ...cfg,
    dataDir,
    accessKey,
    secretKey,
    meta: { configFile, credentials, credentialsFile, warnings },
  };
}

function issueToError(issue: z.core.$ZodIssue, raw: unknown, loader: Loader, count: number): ConfigError {
  const more = count > 1 ? ` (and ${count - 1} more problem${count > 2 ? 's' : ''})` : '';
  const p = issue.path;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const parent = p.length ? `${p.map(String).join('.')}.` : '';
    const full = `${parent}${key}`;
    // Inside an array item (users[0].foo): name it after the setting.
    const top = SETTING_LIST.find((s) => s.path === String(p[0]));
    if (top && p.length > 0 && top.kind === 'json') {
      const where = loader.label(top.path, subPath(p.slice(1)));
      return new ConfigError(`${where}: unknown field "${key}"${more}`, { setting: top.path, env: top.env });
    }
    const siblings = SETTING_LIST.filter((s) => s.path.startsWith(parent) && !s.path.slice(parent.length).includes('.'))
      .map((s) => s.path.slice(parent.length))
      .concat(parent ? [] : [...GROUPS]);
    const hint = closest(key, siblings);
    const file = loader.configFile ?? 'the config file';
    return new ConfigError(
      `unknown setting "${full}" in ${file}${hint ? ` (did you mean "${parent}${hint}"?)` : ''}${more}`,
      { setting: full },
    );
  }
  // Find the setting this issue belongs to: the longest settings path that prefixes the issue path.
  const dotted = p.map(String);
  let best: SettingDef | undefined;
  let depth = 0;
  for (const s of SETTING_LIST) {
    const parts = s.path.split('.');
    if (parts.length <= dotted.length && parts.every((x, i) => x === dotted[i]) && parts.length > depth) {
      best = s;
      depth = parts.length;
    }
  }
  if (!best) {
    // A group given as a scalar, e.g. `s3: 5`.
    const name = dotted.join('.') || 'configuration';
    const file = loader.configFile ?? 'the config file';
    return new ConfigError(`${name} in ${file}: expected a mapping, got ${show(getAt(raw, p), false)}${more}`, { setting: name });
  }
  const rest = p.slice(depth);
  const origin = loader.origins.get(best.path);
  const value = getAt(raw, p);
  const lastKey = rest.length ? String(rest[rest.length - 1]) : '';
  const secret = best.kind === 'json' ? SECRET_FIELDS.has(lastKey) : !!best.secret;
  let expect: string;
  let shown: string;
  if (rest.length === 0) {
    expect = best.expect;
    shown = origin?.from === 'env' && best.kind !== 'json' ? show(origin.raw, secret) : show(value, secret && best.kind !== 'json');
  } else {
    const meta = metaExpect(best.schema, rest);
    expect = meta ?? best.expect;
    shown = show(value, secret);
  }
  return new ConfigError(`${loader.label(best.path, subPath(rest))}: expected ${expect}, got ${shown}${more}`, {
    setting: best.path + subPath(rest),
    env: best.env,
  });
}

/** The `expect` meta of the sub-schema at `rest` (inside users/cmks/datasets), if any. */
function metaExpect(schema: z.ZodType, rest: PropertyKey[]): string | undefined {
  let cur: z.ZodType | undefined = schema;
  let found: string | undefined;
  for (const k of rest) {
    if (!cur) break;
    cur = unwrap(cur);
    if (cur instanceof z.ZodArray && typeof k === 'number') cur = cur.element as z.ZodType;
    else if (cur instanceof z.ZodObject && typeof k === 'string') cur = cur.shape[k] as z.ZodType | undefined;
    else return found;
    const m = cur ? (cur.meta() as { expect?: string } | undefined) : undefined;
    found = m?.expect ?? (cur && unwrap(cur) instanceof z.ZodObject ? 'an object' : found);
  }
  return found;
}

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  while (cur instanceof z.ZodOptional) cur = cur.unwrap() as z.ZodType;
  return cur;
}

function crossCheck(cfg: z.output<typeof ConfigSchema>, L: Loader, cwd: string): void {
  const pair = (a: SettingPath, b: SettingPath, va: unknown, vb: unknown) => {
    if ((va === undefined) !== (vb === undefined)) {
      const [missing, given] = va === undefined ? [a, b] : [b, a];
      L.fail(missing, `must be set together with ${given} (${SETTINGS[given].env})`);
    }
  };
  pair('accessKey', 'secretKey', cfg.accessKey, cfg.secretKey);
  pair('s3.accessKey', 's3.secretKey', cfg.s3.accessKey, cfg.s3.secretKey);
  pair('tls.cert', 'tls.key', cfg.tls.cert, cfg.tls.key);
  for (const k of ['tls.cert', 'tls.key'] as const) {
    const v = k === 'tls.cert' ? cfg.tls.cert : cfg.tls.key;
    if (v !== undefined && !isReadableFile(path.resolve(cwd, v))) L.fail(k, `expected ${SETTINGS[k].expect}, got ${show(v, false)} (no such readable file)`);
  }

  if (cfg.port !== 0 && cfg.port === cfg.adminPort) {
    const any = (h: string) => h === '0.0.0.0' || h === '::';
    if (cfg.host === cfg.adminHost || any(cfg.host) || any(cfg.adminHost)) {
      L.fail('adminPort', `must differ from port (${SETTINGS.port.env}), both are ${cfg.port}`);
    }
  }
  if (cfg.kmsPort !== undefined && cfg.kmsPort !== 0) {
    const any = (h: string) => h === '0.0.0.0' || h === '::';
    if (cfg.kmsPort === cfg.port) L.fail('kmsPort', `must differ from port (${SETTINGS.port.env}), both are ${cfg.port}`);
    if (cfg.kmsPort === cfg.adminPort && (cfg.host === cfg.adminHost || any(cfg.host) || any(cfg.adminHost))) {
      L.fail('kmsPort', `must differ from adminPort (${SETTINGS.adminPort.env}), both are ${cfg.adminPort}`);
    }
  }
  if (cfg.requestTimeoutMs > 0 && cfg.headersTimeoutMs > cfg.requestTimeoutMs) {
    L.fail('headersTimeoutMs', `expected at most requestTimeoutMs (${cfg.requestTimeoutMs}) when that is not 0, got ${cfg.headersTimeoutMs}`);
  }

  // PKCS#11
  const needPkcs11 = cfg.cmk === 'pkcs11' || cfg.cmks.some((c) => c.provider === 'pkcs11');
  if (needPkcs11) {
    if (cfg.pkcs11.module === undefined) L.fail('pkcs11.module', 'required when a CMK of kind "pkcs11" is configured');
    if (!isReadableFile(path.resolve(cwd, cfg.pkcs11.module))) {
      L.fail('pkcs11.module', `expected ${SETTINGS['pkcs11.module'].expect}, got ${show(cfg.pkcs11.module, false)} (no such readable file)`);
    }
  }
  if (cfg.cmk === 'pkcs11') {
    if (cfg.pkcs11.token === undefined) L.fail('pkcs11.token', 'required when cmk is "pkcs11"');
    if (cfg.pkcs11.pin === undefined) L.fail('pkcs11.pin', 'required when cmk is "pkcs11"');
  }
  if (cfg.cmk === 'transit') {
    for (const k of ['addr', 'token', 'key'] as const) if (cfg.transit[k] === undefined) L.fail(`transit.${k}`, 'required when cmk is "transit"');
  }
  if (cfg.cmk === 'awskms' && cfg.kms.keyId === undefined) L.fail('kms.keyId', 'required when cmk is "awskms"');
  const cmkIds = new Set<string>(['default']);
  cfg.cmks.forEach((c, i) => {
    if (cmkIds.has(c.id)) L.fail('cmks', c.id === 'default' ? '"default" is the id of the main CMK (setting cmk)' : `duplicate id ${JSON.stringify(c.id)}`, `[${i}].id`);
    cmkIds.add(c.id);
    if (c.provider === 'pkcs11') {
      if (c.token === undefined && cfg.pkcs11.token === undefined) L.fail('cmks', `required for a pkcs11 CMK when pkcs11.token (${SETTINGS['pkcs11.token'].env}) is unset`, `[${i}].token`);
      if (c.pin === undefined && cfg.pkcs11.pin === undefined) L.fail('cmks', `required for a pkcs11 CMK when pkcs11.pin (${SETTINGS['pkcs11.pin'].env}) is unset`, `[${i}].pin`);
    } else if (c.provider !== 'transit' && (c.token !== undefined || c.pin !== undefined)) {
      L.fail('cmks', 'token/pin are only for provider "pkcs11" (and token for "transit")', `[${i}]`);
    }
  });

  // Datasets
  const names = new Set<string>();
  cfg.datasets.forEach((d, i) => {
    if (names.has(d.name)) L.fail('datasets', `duplicate dataset ${JSON.stringify(d.name)}`, `[${i}].name`);
    names.add(d.name);
    if (d.name.split('/')[0] === cfg.metaBucket) L.fail('datasets', `the meta bucket ${JSON.stringify(cfg.metaBucket)} cannot be a dataset`, `[${i}].name`);
    if (d.cmk !== undefined && !cmkIds.has(d.cmk)) {
      L.fail('datasets', `expected a configured CMK id (${[...cmkIds].map((x) => JSON.stringify(x)).join(', ')}), got ${JSON.stringify(d.cmk)}`, `[${i}].cmk`);
    }
  });

  // Users
  const keys = new Set<string>();
  cfg.users.forEach((u, i) => {
    if (keys.has(u.accessKey)) L.fail('users', `duplicate accessKey ${JSON.stringify(u.accessKey)}`, `[${i}].accessKey`);
    keys.add(u.accessKey);
    const j = u.buckets.indexOf(cfg.metaBucket);
    if (j >= 0) L.fail('users', `the meta bucket ${JSON.stringify(cfg.metaBucket)} cannot be granted to users`, `[${i}].buckets[${j}]`);
  });
  if (cfg.accessKey !== undefined && keys.has(cfg.accessKey)) {
    L.fail('users', 'duplicates the root accessKey', `[${cfg.users.findIndex((u) => u.accessKey === cfg.accessKey)}].accessKey`);
  }

  // Tenants
  const tenantOf = new Map<string, string>(); // bucket -> tenant
  const tenantNames = new Set<string>();
  cfg.tenants.forEach((t, i) => {
    if (tenantNames.has(t.name)) L.fail('tenants', `duplicate tenant ${JSON.stringify(t.name)}`, `[${i}].name`);
    tenantNames.add(t.name);
    if (t.cmk !== undefined && !cmkIds.has(t.cmk)) {
      L.fail('tenants', `expected a configured CMK id (${[...cmkIds].map((x) => JSON.stringify(x)).join(', ')}), got ${JSON.stringify(t.cmk)}`, `[${i}].cmk`);
    }
    (t.buckets ?? []).forEach((b, j) => {
      if (b === cfg.metaBucket) L.fail('tenants', `the meta bucket ${JSON.stringify(cfg.metaBucket)} cannot belong to a tenant`, `[${i}].buckets[${j}]`);
      const other = tenantOf.get(b);
      if (other !== undefined) L.fail('tenants', `bucket ${JSON.stringify(b)} already belongs to tenant ${JSON.stringify(other)}`, `[${i}].buckets[${j}]`);
      tenantOf.set(b, t.name);
    });
    (t.admins ?? []).forEach((a, j) => {
      if (keys.has(a.accessKey)) L.fail('tenants', `duplicate accessKey ${JSON.stringify(a.accessKey)} (access keys are unique across users and tenant admins)`, `[${i}].admins[${j}].accessKey`);
      keys.add(a.accessKey);
    });
  });
  cfg.users.forEach((u, i) => {
    if (u.tenant === undefined) return;
    if (!tenantNames.has(u.tenant)) L.fail('users', `expected a configured tenant (tenants[].name), got ${JSON.stringify(u.tenant)}`, `[${i}].tenant`);
    const j = u.buckets.findIndex((b) => tenantOf.has(b) && tenantOf.get(b) !== u.tenant);
    if (j >= 0) L.fail('users', `bucket ${JSON.stringify(u.buckets[j])} belongs to tenant ${JSON.stringify(tenantOf.get(u.buckets[j]))}, not to the user's tenant`, `[${i}].buckets[${j}]`);
  });
}

function isReadableFile(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.R_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Generated root credentials

const ALNUM_UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function randomString(alphabet: string, n: number): string {
  const bytes = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[bytes[i] % alphabet.length];
  return s;
}

/** A fresh root credential pair: a 20-character access key (AWS style, "LC" prefix) and a 40-character secret. */
export function generateCredentials(): { accessKey: string; secretKey: string } {
  return {
    accessKey: `LC${randomString(ALNUM_UPPER, 18)}`,
    secretKey: randomBytes(30).toString('base64').replace(/\+/g, 'x').replace(/\//g, 'y'),
  };
}

function loadOrCreateCredentials(
  file: string,
  persist: boolean,
  warnings: string[],
): { accessKey: string; secretKey: string; source: CredentialsSource } {
  const read = () => {
    let data: unknown;
    try {
      data = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`credentials file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'invalid JSON'}); fix or delete it, or set LAKECRYPT_ACCESS_KEY and LAKECRYPT_SECRET_KEY`);
    }
    const ok = z.object({ accessKey: accessKeySchema, secretKey: secretKeySchema }).safeParse(data);
    if (!ok.success) {
      throw new ConfigError(`credentials file ${file}: expected {"accessKey": ${EXPECT_ACCESS_KEY}, "secretKey": ${EXPECT_SECRET_KEY}}; fix or delete it`);
    }
    try {
      if ((fs.statSync(file).mode & 0o077) !== 0) warnings.push(`credentials file ${file} is readable by group/others; chmod 600 it`);
    } catch { /* ignore */ }
    return { ...ok.data, source: 'stored' as const };
  };
  if (fs.existsSync(file)) return read();
  const creds = generateCredentials();
  if (!persist) return { ...creds, source: 'ephemeral' };
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, `${JSON.stringify({ ...creds, createdAt: new Date().toISOString() }, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return read(); // another process won the race
    throw new ConfigError(`dataDir (LAKECRYPT_DATA_DIR): cannot write ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}); make the directory writable or set LAKECRYPT_ACCESS_KEY and LAKECRYPT_SECRET_KEY`, { setting: 'dataDir', env: 'LAKECRYPT_DATA_DIR' });
  }
  return { ...creds, source: 'generated' };
}

// ---------------------------------------------------------------------------------------------------------
// Helpers for callers

/** A deep copy with every secret replaced by "***" (unset secrets stay unset), safe to log. */
export function redactConfig<T extends Partial<Config> | Record<string, unknown>>(cfg: T): T {
  const walk = (v: unknown, parentKey: string): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x, parentKey));
    if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
      const o = v as Record<string, unknown>;
      // `token` is a secret (transit) except where it is a PKCS#11 token label, which operators need to see.
      const pkcs11 = parentKey === 'pkcs11' || o.provider === 'pkcs11' || o.kind === 'pkcs11';
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) {
        const secret = (SECRET_FIELDS.has(k) && !(k === 'token' && pkcs11)) || /secret|password|passphrase/i.test(k);
        out[k] = secret ? (x === undefined ? undefined : '***') : walk(x, k);
      }
      return out;
    }
    return v;
  };
  return walk(cfg, '') as T;
}

/** `loadConfig`, but on failure print ONE line to stderr (no stack) and exit with status 1. */
export function loadConfigOrExit(opts: LoadConfigOptions = {}): Config {
  try {
    return loadConfig(opts);
  } catch (e) {
    process.stderr.write(`lakecrypt: configuration error: ${formatConfigError(e)}\n`);
    process.exit(1);
  }
}

/** Unknown LAKECRYPT_* variables (probably typos), for the caller to warn about. */
export function unknownEnvVars(env: Record<string, string | undefined> = process.env): string[] {
  // Besides the settings: the config file, and the admin CLI's own (src/cli/profiles.ts, bin/lakecrypt.mjs).
  const known = new Set<string>(['LAKECRYPT_CONFIG', 'LAKECRYPT_ADMIN_URL', 'LAKECRYPT_PROFILE', 'LAKECRYPT_CONFIG_HOME', 'LAKECRYPT_CLI_RUN']);
  for (const s of SETTING_LIST) {
    known.add(s.env);
    known.add(`${s.env}_FILE`);
  }
  return Object.keys(env).filter((k) => k.startsWith('LAKECRYPT_') && !known.has(k) && !k.startsWith('LAKECRYPT_TEST_'));
}

/** Typed accessor for one setting's default (used by docs/tests). */
export function settingDefault<K extends SettingPath>(k: K): Out<K> | undefined {
  return SETTINGS[k].default as Out<K> | undefined;
}

/**
 * The default of a setting that has one: the one place defaults live, for code that also runs without a loaded
 * configuration (tests, bench, in-process gateways). Throws if the table gives none (a programming error).
 */
export function defaultOf<K extends SettingPath>(k: K): NonNullable<Out<K>> {
  const v = SETTINGS[k].default as Out<K> | undefined;
  if (v === undefined || v === null) throw new Error(`settings table: ${k} has no default`);
  return v;
}

export { BY_ENV as SETTINGS_BY_ENV };
