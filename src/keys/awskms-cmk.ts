/**
 * `awskms` CMK provider: the CMK lives in AWS KMS (or anything speaking its API, through `endpoint`), via
 * `@aws-sdk/client-kms`. Only symmetric ENCRYPT_DECRYPT keys (SYMMETRIC_DEFAULT).
 *
 * Wrap / unwrap = KMS `Encrypt` / `Decrypt` of the KEK material with the encryption context
 *   `{ "lakecrypt:aad": "b64:" + base64(aad) }`
 * which KMS authenticates (a different or missing context fails with InvalidCiphertextException -> IntegrityError)
 * and writes to the customer's CloudTrail, so they see which dataset/KEK version each Decrypt is for (the aad is a
 * dataset id hash and a version number: nothing secret). The blob is KMS's opaque CiphertextBlob; Decrypt always
 * names the KMS key of the recorded version (`KeyId`), so a blob can never be opened under another key.
 *
 * Versions. AWS KMS has no caller-visible key versions (its automatic rotation keeps old ciphertexts decryptable but
 * says nothing about which backing key made them, and cannot disable one backing version), so a lakecrypt CMK
 * version is a whole KMS key:
 *   - v1 = the configured `keyId` (key id, key ARN or alias);
 *   - vN (N >= 2) = the KMS key that the alias `alias/lakecrypt/<uuid of v1>/v<N>` points to, in the same account
 *     and region. `rotate()` creates a new symmetric key (the account's default key policy; description and tags
 *     name the CMK) and that alias; a customer who wants their own policy can create the key and the alias
 *     themselves. Being aliases in the customer's KMS, versions are seen by every gateway and survive restarts.
 *   - state follows the key's KeyState (DescribeKey): Enabled/Updating -> 'active'; Disabled, PendingImport,
 *     Unavailable -> 'disabled'; PendingDeletion/PendingReplicaDeletion, or the key/alias gone -> 'destroyed'
 *     (a customer can still CancelKeyDeletion inside KMS's 7-30 day waiting period; the key then comes back Disabled).
 *   - new wraps use the newest 'active' version; unwrap needs the recorded version to be Enabled.
 * The customer revokes at their KMS with no lakecrypt call: DisableKey (EnableKey undoes it), ScheduleKeyDeletion,
 * a key policy / grant / IAM change (AccessDenied), or by removing the alias of a version.
 * lakecrypt's own `disable` / `enable` / `destroy` = DisableKey / EnableKey / ScheduleKeyDeletion
 * (`deletionWindowDays`, default 30) of that version's key.
 *
 * Errors: DisabledException, KMSInvalidStateException, AccessDeniedException, NotFoundException and rejected
 * credentials -> KeyRevoked naming the CMK and version; InvalidCiphertextException / IncorrectKeyException ->
 * IntegrityError; no answer, timeouts, throttling and KMS internal errors -> ServiceUnavailable naming the CMK and the
 * endpoint. Credentials come from `credentials` or the standard AWS chain (AWS_ACCESS_KEY_ID, profiles, roles...);
 * they are held by the SDK client, a #private field: never in errors, logs or `JSON.stringify(provider)`.
 *
 * Tested against nsmithuk/local-kms (test/helpers/local-kms.ts), which enforces DisableKey / pending deletion and
 * encryption contexts but checks no request signatures or IAM policies, and whose CiphertextBlob carries its key
 * reference outside the authenticated part (a flipped byte there still decrypts to the same key: not a forgery).
 */
import { createRequire } from 'node:module';
import type { KMSClient, KeyMetadata } from '@aws-sdk/client-kms';

/**
 * The AWS SDK's KMS client, loaded on first use: only a gateway with an AWS KMS CMK pays for it (about 6 MiB of RSS
 * and its load time at start-up otherwise: docs/OPERATIONS.md "Memory").
 */
type KmsSdk = typeof import('@aws-sdk/client-kms');
let sdkModule: KmsSdk | undefined;
const sdk = (): KmsSdk => (sdkModule ??= createRequire(import.meta.url)('@aws-sdk/client-kms') as KmsSdk);
import { S3Error, type S3ErrorCode } from '../errors.ts';
import { Mutex } from './local-cmk.ts';
import type { CmkProvider, CmkVersionInfo, WrappedKey } from './types.ts';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEYID_RE = /^(?:[0-9a-fA-F-]{36}|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key\/[0-9a-fA-F-]{36}|alias\/[A-Za-z0-9/_-]+)|alias\/[A-Za-z0-9/_-]+|mrk-[0-9a-f]{32})$/;
const UNKNOWN_TIME = new Date(0).toISOString();
const WRAP_CACHE_MS = 30_000;

export interface AwsKmsCmkOptions {
  /** Logical CMK name (tenant) in lakecrypt. */
  id: string;
  /** KMS key of version 1: key id, key ARN or alias (alias/...). */
  keyId: string;
  /** Region; default AWS_REGION / AWS_DEFAULT_REGION, else us-east-1. */
  region?: string;
  /** Endpoint override (a KMS-compatible server, a VPC endpoint). */
  endpoint?: string;
  /** Static credentials; default the standard AWS credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
  /** ScheduleKeyDeletion waiting period for destroy(); 7-30, default 30. */
  deletionWindowDays?: number;
}

interface VersionRow {
  version: number;
  /** What Encrypt/Decrypt/DescribeKey take: the configured key id for v1, the alias for the others. */
  ref: string;
  meta?: KeyMetadata;
  state: CmkVersionInfo['state'];
  createdAt: string;
}

export class AwsKmsCmkProvider implements CmkProvider {
  readonly kind = 'awskms' as const;
  readonly id: string;
  readonly keyId: string;
  readonly region: string;
  readonly endpoint?: string;
  private readonly deletionWindowDays: number;
  #client: KMSClient;
  private readonly mutex = new Mutex();
  private rootP?: Promise<KeyMetadata>;
  private wrapCache?: { at: number; row: VersionRow };
  private wrapRowP?: Promise<VersionRow>;

  constructor(opts: AwsKmsCmkOptions) {
    if (!ID_RE.test(opts.id)) throw new S3Error('InvalidArgument', `invalid CMK id: ${opts.id}`);
    this.id = opts.id;
    if (!KEYID_RE.test(opts.keyId)) throw new S3Error('InvalidArgument', `CMK ${opts.id}: keyId must be a KMS key id, key ARN or alias/...`);
    this.keyId = opts.keyId;
    this.region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    if (opts.endpoint !== undefined) {
      let u: URL;
      try {
        u = new URL(opts.endpoint);
      } catch {
        throw new S3Error('InvalidArgument', `CMK ${opts.id}: KMS endpoint is not a URL`);
      }
      if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password) throw new S3Error('InvalidArgument', `CMK ${opts.id}: KMS endpoint must be http(s)://host[:port]`);
      this.endpoint = opts.endpoint.replace(/\/+$/, '');
    }
    const days = opts.deletionWindowDays ?? 30;
    if (!Number.isInteger(days) || days < 7 || days > 30) throw new S3Error('InvalidArgument', `CMK ${opts.id}: deletionWindowDays must be 7-30`);
    this.deletionWindowDays = days;
    const timeout = opts.timeoutMs ?? 10_000;
    this.#client = new (sdk().KMSClient)({
      region: this.region,
      endpoint: this.endpoint,
      credentials: opts.credentials,
      maxAttempts: 2,
      requestHandler: { connectionTimeout: Math.min(timeout, 5000), requestTimeout: timeout },
    });
  }

  private get where(): string {
    return `KMS key ${this.keyId} at ${this.endpoint ?? `AWS KMS ${this.region}`}`;
  }

  private fail(code: S3ErrorCode, what: string): S3Error {
    return new S3Error(code, `CMK ${this.id} (${this.where}): ${what}`);
  }

  /** Maps an SDK error; `ciphertext` = a Decrypt (its ciphertext errors are integrity failures). */
  private mapError(e: unknown, op: string, ciphertext = false): S3Error {
    if (e instanceof S3Error) return e;
    const err = e as Error & { $metadata?: { httpStatusCode?: number }; code?: string; $fault?: string };
    const name = err?.name ?? 'Error';
    const msg = String(err?.message ?? '').replace(/\s+/g, ' ').slice(0, 160);
    switch (name) {
      case 'DisabledException':
        return this.fail('KeyRevoked', `${op}: the KMS key is disabled`);
      case 'KMSInvalidStateException':
        return this.fail('KeyRevoked', `${op}: the KMS key is not usable (${/pending deletion/i.test(msg) ? 'pending deletion' : 'invalid state'})`);
      case 'NotFoundException':
        return this.fail('KeyRevoked', `${op}: the KMS key or alias does not exist`);
      case 'AccessDeniedException':
        return this.fail('KeyRevoked', `${op}: access denied by the KMS (key policy, grant or IAM)`);
      case 'UnrecognizedClientException':
      case 'InvalidSignatureException':
      case 'ExpiredTokenException':
      case 'InvalidClientTokenId':
        return this.fail('KeyRevoked', `${op}: the KMS did not accept lakecrypt's credentials (${name})`);
      case 'InvalidCiphertextException':
      case 'IncorrectKeyException':
        if (ciphertext) return this.fail('IntegrityError', `${op}: wrapped key failed authentication`);
        break;
      case 'InvalidKeyUsageException':
        return this.fail('InvalidArgument', `${op}: the KMS key is not a symmetric ENCRYPT_DECRYPT key`);
      case 'CredentialsProviderError':
        return this.fail('ServiceUnavailable', `${op}: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile/role)`);
      case 'KMSInternalException':
      case 'DependencyTimeoutException':
      case 'KeyUnavailableException':
      case 'ThrottlingException':
      case 'LimitExceededException':
      case 'TimeoutError':
      case 'RequestTimeout':
        return this.fail('ServiceUnavailable', `${op}: the KMS is unavailable (${name})`);
    }
    const status = err?.$metadata?.httpStatusCode;
    if (status === undefined || status >= 500 || status === 429) {
      const why = err?.code ?? (err as { cause?: { code?: string } })?.cause?.code ?? name;
      return this.fail('ServiceUnavailable', `${op}: the KMS is unreachable (${why})`);
    }
    return this.fail('InternalError', `${op}: the KMS answered ${name} (${status})`);
  }

  private async send<T>(cmd: object, op: string, ciphertext = false): Promise<T> {
    try {
      // One wrapper for every KMS command (error mapping in one place): the SDK types `send` per command class,
      // which a wrapper over several classes cannot name; each caller states the output type it reads.
      return (await this.#client.send(cmd as never)) as T;
    } catch (e) {
      throw this.mapError(e, op, ciphertext);
    }
  }

  /** Metadata of the v1 key (resolves an alias; its UUID names the version aliases). Cached once it succeeds. */
  private root(): Promise<KeyMetadata> {
    this.rootP ??= this.send<{ KeyMetadata?: KeyMetadata }>(new (sdk().DescribeKeyCommand)({ KeyId: this.keyId }), 'describe').then((r) => {
      if (!r.KeyMetadata?.KeyId) throw this.fail('InternalError', 'DescribeKey returned no key');
      if (r.KeyMetadata.KeyUsage && r.KeyMetadata.KeyUsage !== 'ENCRYPT_DECRYPT') throw this.fail('InvalidArgument', 'the KMS key is not an ENCRYPT_DECRYPT key');
      if (r.KeyMetadata.KeySpec && r.KeyMetadata.KeySpec !== 'SYMMETRIC_DEFAULT') throw this.fail('InvalidArgument', `KMS key spec ${r.KeyMetadata.KeySpec} is not SYMMETRIC_DEFAULT`);
      return r.KeyMetadata;
    });
    this.rootP.catch(() => (this.rootP = undefined));
    return this.rootP;
  }

  private aliasPrefix(rootUuid: string): string {
    return `alias/lakecrypt/${rootUuid}/v`;
  }

  /** UUID of the v1 key: from keyId itself when it is a key id / key ARN (works even once the key is deleted). */
  private async rootUuid(): Promise<string> {
    const m = /^(?:arn:[^:]+:kms:[^:]+:\d{12}:key\/)?([0-9a-fA-F-]{36})$/.exec(this.keyId);
    return m ? m[1] : (await this.root()).KeyId!;
  }

  private async ref(version: number): Promise<string> {
    if (version === 1) return this.keyId;
    return `${this.aliasPrefix(await this.rootUuid())}${version}`;
  }

  /** Version -> key of the aliases `alias/lakecrypt/<uuid>/v<N>` (N >= 2). */
  private async aliasVersions(): Promise<Map<number, string>> {
    const prefix = this.aliasPrefix(await this.rootUuid());
    const out = new Map<number, string>();
    let marker: string | undefined;
    for (let page = 0; page < 1000; page++) {
      const r = await this.send<{ Aliases?: { AliasName?: string; TargetKeyId?: string }[]; NextMarker?: string; Truncated?: boolean }>(
        new (sdk().ListAliasesCommand)({ Limit: 100, Marker: marker }),
        'list versions',
      );
      for (const a of r.Aliases ?? []) {
        if (!a.AliasName?.startsWith(prefix) || !a.TargetKeyId) continue;
        const n = Number(a.AliasName.slice(prefix.length));
        if (Number.isInteger(n) && n >= 2) out.set(n, a.TargetKeyId);
      }
      if (!r.Truncated || !r.NextMarker) break;
      marker = r.NextMarker;
    }
    return out;
  }

  private static stateOf(meta: KeyMetadata | undefined): CmkVersionInfo['state'] {
    switch (meta?.KeyState) {
      case 'Enabled':
      case 'Updating':
      case 'Creating':
        return 'active';
      case 'PendingDeletion':
      case 'PendingReplicaDeletion':
      case undefined:
        return 'destroyed';
      default:
        return 'disabled';
    }
  }

  private async describe(ref: string, op: string): Promise<KeyMetadata | undefined> {
    try {
      return (await this.send<{ KeyMetadata?: KeyMetadata }>(new (sdk().DescribeKeyCommand)({ KeyId: ref }), op)).KeyMetadata;
    } catch (e) {
      if (e instanceof S3Error && /does not exist/.test(e.message)) return undefined;
      throw e;
    }
  }

  private async rows(): Promise<VersionRow[]> {
    const uuid = await this.rootUuid();
    const aliases = await this.aliasVersions();
    const max = Math.max(1, ...aliases.keys());
    const rows: VersionRow[] = [];
    for (let v = 1; v <= max; v++) {
      const target = v === 1 ? this.keyId : aliases.get(v);
      const meta = target ? await this.describe(target, 'describe version') : undefined;
      rows.push({
        version: v,
        ref: v === 1 ? this.keyId : `${this.aliasPrefix(uuid)}${v}`,
        meta,
        state: AwsKmsCmkProvider.stateOf(meta),
        createdAt: meta?.CreationDate ? new Date(meta.CreationDate).toISOString() : UNKNOWN_TIME,
      });
    }
    return rows;
  }

  private static context(aad: Buffer): Record<string, string> {
    return { 'lakecrypt:aad': `b64:${aad.toString('base64')}` };
  }

  async wrap(plaintextKey: Buffer, aad: Buffer): Promise<WrappedKey> {
    if (plaintextKey.length === 0 || plaintextKey.length > 1024) throw new S3Error('InvalidArgument', 'key material size');
    for (let attempt = 0; attempt < 2; attempt++) {
      let row = this.wrapCache && Date.now() - this.wrapCache.at < WRAP_CACHE_MS && attempt === 0 ? this.wrapCache.row : undefined;
      if (!row) {
        // one lookup however many wraps wait for it
        this.wrapRowP ??= this.rows()
          .then((rows) => {
            const r = rows.filter((x) => x.state === 'active').pop();
            if (!r) throw this.fail('KeyRevoked', 'no enabled version to wrap with');
            this.wrapCache = { at: Date.now(), row: r };
            return r;
          })
          .finally(() => (this.wrapRowP = undefined));
        row = await this.wrapRowP;
      }
      try {
        const r = await this.send<{ CiphertextBlob?: Uint8Array }>(
          new (sdk().EncryptCommand)({ KeyId: row.ref, Plaintext: plaintextKey, EncryptionContext: AwsKmsCmkProvider.context(aad) }),
          `wrap (v${row.version})`,
        );
        if (!r.CiphertextBlob?.length) throw this.fail('InternalError', 'Encrypt returned no ciphertext');
        return { cmkId: this.id, cmkVersion: row.version, blob: Buffer.from(r.CiphertextBlob) };
      } catch (e) {
        // the version we believed active was disabled at the KMS meanwhile: look again once
        this.wrapCache = undefined;
        if (attempt === 0 && e instanceof S3Error && e.code === 'KeyRevoked') continue;
        throw e;
      }
    }
    throw this.fail('KeyRevoked', 'no enabled version to wrap with');
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Buffer> {
    if (wrapped.cmkId !== this.id) throw new S3Error('IntegrityError', `wrapped under CMK ${wrapped.cmkId}, not ${this.id}`);
    const v = wrapped.cmkVersion;
    if (!Number.isInteger(v) || v < 1) throw new S3Error('IntegrityError', `invalid CMK version ${v}`);
    if (wrapped.blob.length < 16 || wrapped.blob.length > 6144) throw this.fail('IntegrityError', 'wrapped key blob is malformed');
    const r = await this.send<{ Plaintext?: Uint8Array }>(
      new (sdk().DecryptCommand)({ KeyId: await this.ref(v), CiphertextBlob: wrapped.blob, EncryptionContext: AwsKmsCmkProvider.context(aad) }),
      `unwrap (v${v})`,
      true,
    );
    if (!r.Plaintext) throw this.fail('InternalError', 'Decrypt returned no plaintext');
    const out = Buffer.from(r.Plaintext);
    r.Plaintext.fill(0);
    return out;
  }

  async versions(): Promise<CmkVersionInfo[]> {
    return (await this.rows()).map((r) => ({ version: r.version, state: r.state, createdAt: r.createdAt }));
  }

  async rotate(): Promise<CmkVersionInfo> {
    return this.mutex.run(async () => {
      const root = await this.root();
      const uuid = root.KeyId!;
      this.wrapCache = undefined;
      for (let attempt = 0; attempt < 3; attempt++) {
        const next = Math.max(1, ...(await this.aliasVersions()).keys()) + 1;
        const created = await this.send<{ KeyMetadata?: KeyMetadata }>(
          new (sdk().CreateKeyCommand)({
            KeyUsage: 'ENCRYPT_DECRYPT',
            KeySpec: 'SYMMETRIC_DEFAULT',
            Description: `lakecrypt CMK ${this.id} version ${next} (version 1 is ${uuid})`,
            Tags: [
              { TagKey: 'lakecrypt:cmk', TagValue: this.id },
              { TagKey: 'lakecrypt:version', TagValue: String(next) },
            ],
          }),
          'rotate (create key)',
        );
        const keyId = created.KeyMetadata?.KeyId;
        if (!keyId) throw this.fail('InternalError', 'CreateKey returned no key');
        try {
          await this.#client.send(new (sdk().CreateAliasCommand)({ AliasName: `${this.aliasPrefix(uuid)}${next}`, TargetKeyId: keyId }));
        } catch (e) {
          // another gateway took this version number: drop our key, try the next number
          // Best effort: the failed rotation is what the caller sees; a key left behind is only unused (tagged, no alias).
          await this.#client.send(new (sdk().ScheduleKeyDeletionCommand)({ KeyId: keyId, PendingWindowInDays: 7 })).catch(() => undefined);
          if ((e as Error).name === 'AlreadyExistsException') continue;
          throw this.mapError(e, 'rotate (create alias)');
        }
        const when = created.KeyMetadata?.CreationDate;
        return { version: next, state: 'active' as const, createdAt: when ? new Date(when).toISOString() : new Date().toISOString() };
      }
      throw this.fail('ServiceUnavailable', 'rotate: the version number kept being taken; retry');
    });
  }

  /** The KMS key id of a version (DisableKey & co. take no alias). */
  private async target(version: number): Promise<{ keyId: string; meta: KeyMetadata }> {
    if (!Number.isInteger(version) || version < 1) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
    const meta = await this.describe(await this.ref(version), 'describe version');
    if (!meta?.KeyId) {
      const max = Math.max(1, ...(await this.aliasVersions()).keys());
      if (version > max) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
      throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
    }
    return { keyId: meta.KeyId, meta };
  }

  async disable(version: number): Promise<void> {
    await this.mutex.run(async () => {
      const t = await this.target(version);
      if (AwsKmsCmkProvider.stateOf(t.meta) === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
      this.wrapCache = undefined;
      await this.send(new (sdk().DisableKeyCommand)({ KeyId: t.keyId }), `disable v${version}`);
    });
  }

  async enable(version: number): Promise<void> {
    await this.mutex.run(async () => {
      const t = await this.target(version);
      if (AwsKmsCmkProvider.stateOf(t.meta) === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed (pending deletion at the KMS)`);
      this.wrapCache = undefined;
      await this.send(new (sdk().EnableKeyCommand)({ KeyId: t.keyId }), `enable v${version}`);
    });
  }

  async destroy(version: number): Promise<void> {
    await this.mutex.run(async () => {
      const t = await this.target(version).catch((e: unknown) => {
        if (e instanceof S3Error && e.code === 'InvalidRequest') return null; // already gone
        throw e;
      });
      if (!t || AwsKmsCmkProvider.stateOf(t.meta) === 'destroyed') return;
      this.wrapCache = undefined;
      await this.send(new (sdk().ScheduleKeyDeletionCommand)({ KeyId: t.keyId, PendingWindowInDays: this.deletionWindowDays }), `destroy v${version}`);
    });
  }

  async ping(): Promise<void> {
    await this.send(new (sdk().DescribeKeyCommand)({ KeyId: this.keyId }), 'ping');
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }

  /** Where the CMK lives; never credentials. */
  toJSON(): Record<string, string | undefined> {
    return { kind: this.kind, id: this.id, keyId: this.keyId, region: this.region, endpoint: this.endpoint };
  }
}
