/**
 * `transit` CMK provider: the CMK is a key of a Vault / OpenBao Transit secrets engine held by the customer.
 * Plain `fetch` against the Transit HTTP API (no client library); token auth (`X-Vault-Token`).
 *
 * Wrap / unwrap
 *   `POST /v1/<mount>/encrypt/<key>` and `/decrypt/<key>` with `associated_data` = base64(aad). The blob stored in
 *   lakecrypt's keystore is the server's ciphertext string (`vault:vN:<base64>`) as UTF-8 bytes; `cmkVersion` is
 *   the N in it. The binding uses `associated_data` and NOT `context`: on a non-derived key the server silently
 *   ignores `context` (verified on OpenBao 2.7.2: a `context` ciphertext decrypts under any other context), while
 *   `associated_data` is the AEAD's AAD for aes128-gcm96 / aes256-gcm96 / chacha20-poly1305 keys (a wrong aad answers
 *   400 "cipher: message authentication failed"). Since an older server that does not know `associated_data` would
 *   ignore it as well, the provider proves the binding once per instance before its first wrap/unwrap: it
 *   encrypts a probe under one aad and requires the decrypt under another aad to fail. Derived keys (`derived=true`)
 *   and key types without AEAD are refused at that point with a clear error.
 *
 * Versions = the transit key's versions 1..latest_version. Their state comes from the key's policy:
 *   - v < min_available_version (trimmed)                           -> 'destroyed'
 *   - v < min_decryption_version, or the key is soft-deleted           -> 'disabled'
 *   - otherwise                                                        -> 'active'
 *   (createdAt: the server lists creation times only for versions it can still decrypt with; older ones show the
 *   time seen earlier by this instance, else 1970-01-01T00:00:00.000Z = unknown.)
 *   The customer revokes at their own server, with no lakecrypt call: raise min_decryption_version, soft-delete or
 *   delete the key, revoke lakecrypt's token or narrow its policy. lakecrypt sees it on its next unwrap (KEK cache TTL).
 *
 * Admin operations from lakecrypt map onto the same mechanisms, with the limits transit has:
 *   - rotate()      = `POST keys/<key>/rotate`; new wraps use the new latest version, older ones still decrypt.
 *   - disable(v)    = raise min_decryption_version to v+1. Transit can only disable versions from the oldest up, so
 *                     v must be the lowest enabled version (else InvalidRequest naming the one to disable first).
 *                     min_decryption_version cannot exceed latest_version: disabling the newest version when it is
 *                     the only enabled one soft-deletes the whole key (OpenBao's `keys/<key>/soft-delete`; a server
 *                     without soft-delete answers InvalidRequest: rotate first, or revoke at the server).
 *   - enable(v)     = restore a soft-deleted key and lower min_decryption_version to v (this also re-enables every
 *                     version between v and the old minimum: transit has no per-version flag).
 *   - destroy(v)    = make v undecryptable forever: raise min_decryption_version and min_encryption_version above v
 *                     (the server requires min_encryption_version >= min_decryption_version >= min_available_version
 *                     before it trims), then `POST keys/<key>/trim` with min_available_version = v+1, which deletes
 *                     the key material of every version <= v. Hence only the lowest remaining version can be
 *                     destroyed, and never the newest one (rotate first).
 *
 * Errors: 400 "disallowed by policy (too old)", "soft-deleted", "encryption key not found", 403 (token revoked,
 * policy narrowed) and 404 (mount or key gone) -> KeyRevoked naming the CMK; 400 about the ciphertext or its
 * authentication -> IntegrityError; no answer, a timeout, 429 and 5xx (e.g. sealed) -> ServiceUnavailable naming
 * the CMK and the server address. The token never appears in an error, a log line or `JSON.stringify(provider)`
 * (a `#private` field); a `tokenFile` is re-read when the server answers 403 (e.g. a Vault/OpenBao agent renewed it).
 *
 * Policy the token needs: `read` on `<mount>/keys/<key>`, `update` on `<mount>/encrypt/<key>` and
 * `<mount>/decrypt/<key>`; for lakecrypt-driven rotate/disable/enable/destroy also `update` on
 * `<mount>/keys/<key>/rotate`, `/config`, `/trim`, `/soft-delete-restore` and `delete` on `/soft-delete`.
 */
import { promises as fsp } from 'node:fs';
import { S3Error, type S3ErrorCode } from '../errors.ts';
import { Mutex } from './local-cmk.ts';
import type { CmkProvider, CmkVersionInfo, WrappedKey } from './types.ts';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Transit key and mount names: what the server's routes accept (`\w(([\w-.]+)?\w)?`), plus `/` in a mount path. */
const KEY_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?$/;
const MOUNT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,126}[A-Za-z0-9_]$|^[A-Za-z0-9_]$/;
const CT_RE = /^vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/]+={0,2}$/;
const AEAD_TYPES = new Set(['aes128-gcm96', 'aes256-gcm96', 'chacha20-poly1305', 'xchacha20-poly1305']);
const UNKNOWN_TIME = new Date(0).toISOString();

export interface TransitCmkOptions {
  /** Logical CMK name (tenant) in lakecrypt. */
  id: string;
  /** Server address, e.g. https://vault.example.com:8200 (no trailing /v1). */
  addr: string;
  /** Token; or give `tokenFile`. Never logged. */
  token?: string;
  /** File holding the token (read at start and again after a 403). */
  tokenFile?: string;
  /** Transit key name at the server. */
  key: string;
  /** Transit mount path; default "transit". */
  mount?: string;
  /** Vault Enterprise / OpenBao namespace (X-Vault-Namespace), optional. */
  namespace?: string;
  /** Per-request timeout; default 10 s. */
  timeoutMs?: number;
}

interface KeyState {
  latest: number;
  minDecryption: number;
  minEncryption: number;
  minAvailable: number;
  softDeleted: boolean;
  type: string;
  derived: boolean;
  created: Map<number, string>;
}

interface Reply {
  status: number;
  data: Record<string, unknown> | undefined;
  error: string;
}

export class TransitCmkProvider implements CmkProvider {
  readonly kind = 'transit' as const;
  readonly id: string;
  readonly addr: string;
  readonly key: string;
  readonly mount: string;
  readonly namespace?: string;
  private readonly timeoutMs: number;
  private readonly tokenFile?: string;
  #token: string | undefined;
  private readonly mutex = new Mutex();
  private checkedP?: Promise<void>;
  private readonly seenCreated = new Map<number, string>();

  constructor(opts: TransitCmkOptions) {
    if (!ID_RE.test(opts.id)) throw new S3Error('InvalidArgument', `invalid CMK id: ${opts.id}`);
    this.id = opts.id;
    let u: URL;
    try {
      u = new URL(opts.addr);
    } catch {
      throw new S3Error('InvalidArgument', `CMK ${opts.id}: transit addr is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new S3Error('InvalidArgument', `CMK ${opts.id}: transit addr must be http(s)://`);
    if (u.username || u.password || u.search || u.hash) throw new S3Error('InvalidArgument', `CMK ${opts.id}: transit addr must be scheme://host[:port][/path] only`);
    this.addr = u.origin + u.pathname.replace(/\/+$/, '');
    if (!KEY_RE.test(opts.key)) throw new S3Error('InvalidArgument', `CMK ${opts.id}: invalid transit key name`);
    this.key = opts.key;
    const mount = (opts.mount ?? 'transit').replace(/^\/+|\/+$/g, '');
    if (!MOUNT_RE.test(mount) || mount.includes('..') || mount.includes('//')) throw new S3Error('InvalidArgument', `CMK ${opts.id}: invalid transit mount`);
    this.mount = mount;
    this.namespace = opts.namespace;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (opts.token === undefined && opts.tokenFile === undefined) throw new S3Error('InvalidArgument', `CMK ${opts.id}: transit needs a token or a tokenFile`);
    this.#token = opts.token;
    this.tokenFile = opts.tokenFile;
  }

  /** Where this CMK lives, for messages (never the token). */
  private get where(): string {
    return `transit key ${this.mount}/${this.key} at ${this.addr}`;
  }

  private fail(code: S3ErrorCode, what: string, cause?: unknown): S3Error {
    return new S3Error(code, `CMK ${this.id} (${this.where}): ${what}`, {}, cause === undefined ? undefined : { cause });
  }

  private async token(reload = false): Promise<string> {
    if (this.tokenFile && (reload || this.#token === undefined)) {
      try {
        this.#token = (await fsp.readFile(this.tokenFile, 'utf8')).trim();
      } catch (e) {
        throw this.fail('ServiceUnavailable', `cannot read the token file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      if (!this.#token) throw this.fail('ServiceUnavailable', 'the token file is empty');
    }
    return this.#token ?? '';
  }

  /** One Transit API call. Network failures and timeouts -> ServiceUnavailable; the caller maps HTTP errors. */
  private async call(method: 'GET' | 'POST' | 'DELETE', sub: string, body?: unknown): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'X-Vault-Token': await this.token(attempt > 0), 'X-Vault-Request': 'true' };
      if (this.namespace) headers['X-Vault-Namespace'] = this.namespace;
      if (body !== undefined) headers['Content-Type'] = 'application/json';
      let res: Response;
      let text: string;
      try {
        res = await fetch(`${this.addr}/v1/${this.mount}/${sub}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        text = await res.text();
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        const why = err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (err.cause?.code ?? err.name ?? 'network error');
        throw this.fail('ServiceUnavailable', `transit server unreachable (${why})`);
      }
      // A token file may have been renewed by an agent: re-read it once and retry.
      if (res.status === 403 && this.tokenFile && attempt === 0) continue;
      let json: { data?: Record<string, unknown>; errors?: unknown[] } | undefined;
      try {
        json = text ? (JSON.parse(text) as typeof json) : undefined;
      } catch {
        json = undefined;
      }
      const error = Array.isArray(json?.errors) ? json.errors.map((x) => String(x)).join('; ') : res.ok ? '' : text.slice(0, 200);
      return { status: res.status, data: json?.data ?? undefined, error };
    }
  }

  /** Maps a non-2xx reply of any call (decrypt's ciphertext errors are handled by unwrap first). */
  private httpError(r: Reply, op: string): S3Error {
    const msg = r.error.replace(/\s+/g, ' ').slice(0, 200);
    if (r.status === 403) return this.fail('KeyRevoked', `${op}: permission denied by the transit server (token revoked or policy narrowed)`);
    if (r.status === 404) return this.fail('KeyRevoked', `${op}: transit mount or key not found${msg ? ` (${msg})` : ''}`);
    if (r.status === 429 || r.status >= 500) return this.fail('ServiceUnavailable', `${op}: transit server answered ${r.status}${msg ? ` (${msg})` : ''}`);
    if (/disallowed by policy|too old/.test(msg)) return this.fail('KeyRevoked', `${op}: version disabled by the key's owner (${msg})`);
    if (/soft-deleted/.test(msg)) return this.fail('KeyRevoked', `${op}: the transit key is soft-deleted by its owner`);
    if (/key not found|no existing key/.test(msg)) return this.fail('KeyRevoked', `${op}: the transit key does not exist (deleted by its owner?)`);
    return this.fail('InvalidRequest', `${op}: transit server answered ${r.status}${msg ? ` (${msg})` : ''}`);
  }

  private async state(): Promise<KeyState> {
    const r = await this.call('GET', `keys/${this.key}`);
    if (r.status !== 200 || !r.data) throw this.httpError(r, 'read key');
    const d = r.data;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
    const created = new Map<number, string>();
    for (const [k, v] of Object.entries((d.keys as Record<string, unknown>) ?? {})) {
      const ver = Number(k);
      let t: string | undefined;
      if (typeof v === 'number') t = new Date(v * 1000).toISOString();
      else if (v && typeof v === 'object' && typeof (v as { creation_time?: unknown }).creation_time === 'string') t = new Date((v as { creation_time: string }).creation_time).toISOString();
      if (t && Number.isInteger(ver)) {
        created.set(ver, t);
        this.seenCreated.set(ver, t);
      }
    }
    return {
      latest: num(d.latest_version),
      minDecryption: Math.max(1, num(d.min_decryption_version)),
      minEncryption: num(d.min_encryption_version),
      minAvailable: num(d.min_available_version),
      softDeleted: d.soft_deleted === true,
      type: typeof d.type === 'string' ? d.type : '',
      derived: d.derived === true,
      created,
    };
  }

  private static stateOf(st: KeyState, v: number): CmkVersionInfo['state'] {
    if (v < st.minAvailable) return 'destroyed';
    if (st.softDeleted || v < st.minDecryption) return 'disabled';
    return 'active';
  }

  private async encrypt(plaintext: Buffer, aad: Buffer): Promise<string> {
    const r = await this.call('POST', `encrypt/${this.key}`, { plaintext: plaintext.toString('base64'), associated_data: aad.toString('base64') });
    if (r.status !== 200) throw this.httpError(r, 'wrap');
    const ct = r.data?.ciphertext;
    if (typeof ct !== 'string' || !CT_RE.test(ct)) throw this.fail('InternalError', 'wrap: the transit server returned no ciphertext');
    return ct;
  }

  /** Decrypt; ciphertext / authentication failures -> IntegrityError, the rest via httpError. */
  private async decrypt(ct: string, aad: Buffer, version: number): Promise<Buffer> {
    const r = await this.call('POST', `decrypt/${this.key}`, { ciphertext: ct, associated_data: aad.toString('base64') });
    if (r.status === 200) {
      const pt = r.data?.plaintext;
      if (typeof pt !== 'string') throw this.fail('InternalError', 'unwrap: the transit server returned no plaintext');
      return Buffer.from(pt, 'base64');
    }
    if (r.status === 400 && /disallowed by policy|too old/.test(r.error)) {
      // say whether the owner disabled or trimmed (destroyed) it; best effort
      const st = await this.state().catch(() => undefined);
      const s = st ? TransitCmkProvider.stateOf(st, version) : 'disabled';
      throw this.fail('KeyRevoked', `v${version} is ${s === 'active' ? 'disabled' : s} (min_decryption_version${s === 'destroyed' ? '/min_available_version' : ''} above it)`);
    }
    if (r.status === 400 && /cipher|decode|invalid ciphertext|version is too new|authentication/i.test(r.error)) {
      throw this.fail('IntegrityError', 'wrapped key failed authentication');
    }
    throw this.httpError(r, 'unwrap');
  }

  /**
   * Once per instance (retried after a failure): the key is an AEAD key, not derived, and the server really binds
   * associated_data (a decrypt under another aad must fail).
   */
  private checked(): Promise<void> {
    this.checkedP ??= (async () => {
      const st = await this.state();
      if (st.derived) throw this.fail('InvalidArgument', 'derived transit keys are not supported (lakecrypt binds datasets with associated_data; create the key without derived=true)');
      if (!AEAD_TYPES.has(st.type)) throw this.fail('InvalidArgument', `transit key type ${st.type || '(unknown)'} cannot bind associated data; use aes256-gcm96`);
      const probe = Buffer.alloc(32);
      const ct = await this.encrypt(probe, Buffer.from('lakecrypt aad probe A'));
      const r = await this.call('POST', `decrypt/${this.key}`, { ciphertext: ct, associated_data: Buffer.from('lakecrypt aad probe B').toString('base64') });
      if (r.status === 200) throw this.fail('InternalError', 'the transit server ignores associated_data: it cannot bind a wrapped key to its dataset (upgrade the server)');
      if (r.status !== 400) throw this.httpError(r, 'aad probe');
    })();
    this.checkedP.catch(() => (this.checkedP = undefined));
    return this.checkedP;
  }

  async wrap(plaintextKey: Buffer, aad: Buffer): Promise<WrappedKey> {
    if (plaintextKey.length === 0 || plaintextKey.length > 1024) throw new S3Error('InvalidArgument', 'key material size');
    await this.checked();
    const ct = await this.encrypt(plaintextKey, aad);
    const m = CT_RE.exec(ct)!;
    return { cmkId: this.id, cmkVersion: Number(m[1]), blob: Buffer.from(ct, 'utf8') };
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Buffer> {
    if (wrapped.cmkId !== this.id) throw new S3Error('IntegrityError', `wrapped under CMK ${wrapped.cmkId}, not ${this.id}`);
    // The blob must be the server's own ciphertext string for the recorded version (checked before any call).
    const ct = wrapped.blob.toString('latin1');
    const m = CT_RE.exec(ct);
    if (!m || Number(m[1]) !== wrapped.cmkVersion) throw this.fail('IntegrityError', 'wrapped key blob is malformed');
    await this.checked();
    return this.decrypt(ct, aad, wrapped.cmkVersion);
  }

  async versions(): Promise<CmkVersionInfo[]> {
    const st = await this.state();
    const out: CmkVersionInfo[] = [];
    for (let v = 1; v <= st.latest; v++) {
      out.push({ version: v, state: TransitCmkProvider.stateOf(st, v), createdAt: st.created.get(v) ?? this.seenCreated.get(v) ?? UNKNOWN_TIME });
    }
    return out;
  }

  async rotate(): Promise<CmkVersionInfo> {
    return this.mutex.run(async () => {
      const r = await this.call('POST', `keys/${this.key}/rotate`, {});
      if (r.status !== 200 && r.status !== 204) throw this.httpError(r, 'rotate');
      const st = await this.state();
      return { version: st.latest, state: TransitCmkProvider.stateOf(st, st.latest), createdAt: st.created.get(st.latest) ?? new Date().toISOString() };
    });
  }

  private async config(body: Record<string, number>, op: string): Promise<void> {
    const r = await this.call('POST', `keys/${this.key}/config`, body);
    if (r.status !== 200 && r.status !== 204) throw this.httpError(r, op);
  }

  private checkVersion(st: KeyState, version: number): void {
    if (!Number.isInteger(version) || version < 1 || version > st.latest) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
  }

  disable(version: number): Promise<void> {
    return this.mutex.run(async () => {
      const st = await this.state();
      this.checkVersion(st, version);
      const s = TransitCmkProvider.stateOf(st, version);
      if (s === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
      if (s === 'disabled') return;
      if (version !== st.minDecryption) {
        throw new S3Error(
          'InvalidRequest',
          `CMK ${this.id}: transit disables versions from the oldest up (min_decryption_version); disable v${st.minDecryption}..v${version - 1} first`,
        );
      }
      if (version < st.latest) {
        const body: Record<string, number> = { min_decryption_version: version + 1 };
        if (st.minEncryption > 0 && st.minEncryption < version + 1) body.min_encryption_version = version + 1;
        await this.config(body, 'disable');
        return;
      }
      // the newest and only enabled version: min_decryption_version cannot pass latest_version; soft-delete the key
      const r = await this.call('DELETE', `keys/${this.key}/soft-delete`);
      if (r.status === 200 || r.status === 204) return;
      if (r.status === 404 || r.status === 405) {
        throw new S3Error('InvalidRequest', `CMK ${this.id}: cannot disable the newest version v${version}: this transit server has no soft-delete (rotate first, or revoke lakecrypt's token at the server)`);
      }
      throw this.httpError(r, 'disable');
    });
  }

  enable(version: number): Promise<void> {
    return this.mutex.run(async () => {
      const st = await this.state();
      this.checkVersion(st, version);
      if (TransitCmkProvider.stateOf(st, version) === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
      if (st.softDeleted) {
        const r = await this.call('POST', `keys/${this.key}/soft-delete-restore`, {});
        if (r.status !== 200 && r.status !== 204) throw this.httpError(r, 'enable');
      }
      if (version < st.minDecryption) await this.config({ min_decryption_version: version }, 'enable');
    });
  }

  destroy(version: number): Promise<void> {
    return this.mutex.run(async () => {
      const st = await this.state();
      this.checkVersion(st, version);
      if (version < st.minAvailable) return;
      const lowest = Math.max(1, st.minAvailable);
      if (version !== lowest) {
        throw new S3Error('InvalidRequest', `CMK ${this.id}: transit destroys versions from the oldest up (trim); destroy v${lowest}..v${version - 1} first`);
      }
      if (version >= st.latest) throw new S3Error('InvalidRequest', `CMK ${this.id}: cannot destroy the newest version v${version} (rotate first)`);
      if (st.softDeleted) throw new S3Error('InvalidRequest', `CMK ${this.id}: the transit key is soft-deleted; enable it before destroying a version`);
      const floor = version + 1;
      const body: Record<string, number> = {};
      if (st.minDecryption < floor) body.min_decryption_version = floor;
      if (st.minEncryption < floor) body.min_encryption_version = floor;
      if (Object.keys(body).length) await this.config(body, 'destroy');
      const r = await this.call('POST', `keys/${this.key}/trim`, { min_available_version: floor });
      if (r.status !== 200 && r.status !== 204) throw this.httpError(r, 'destroy');
    });
  }

  async ping(): Promise<void> {
    await this.state();
  }

  async close(): Promise<void> {
    // nothing held open (fetch keeps no session)
  }

  /** Never serialize the token (it is a #private field anyway); show where the CMK lives. */
  toJSON(): Record<string, string> {
    return { kind: this.kind, id: this.id, addr: this.addr, mount: this.mount, key: this.key };
  }
}
