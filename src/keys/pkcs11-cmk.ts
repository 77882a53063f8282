/**
 * `pkcs11` CMK provider (graphene-pk11 / pkcs11js). Every CMK version is a token AES-256 secret key labelled
 * `<id>-v<N>`, generated in the HSM with `token, !extractable, sensitive`: its value never leaves the token.
 * Wrap/unwrap = single-part C_Encrypt/C_Decrypt with CKM_AES_GCM (random 12-byte nonce from the token RNG, the
 * caller's AAD, 128-bit tag); blob = nonce(12) || ciphertext || tag(16), the same layout as the local provider.
 *
 * Version state lives in two places:
 *  - the key object itself: a disabled version has CKA_ENCRYPT = CKA_DECRYPT = false, so the HSM refuses to use it
 *    (enforced for every process sharing the token); a destroyed version's key object is deleted;
 *  - a token data object (CKO_DATA, private, label `<id>-state`) holding JSON `{ seq, versions }` (createdAt and the
 *    state list). SoftHSM makes CKA_VALUE of data objects read-only, so an update creates the next object (seq+1)
 *    and then deletes the old one; the reader takes the highest seq.
 *
 * Sessions: one R/W session per provider; all PKCS#11 calls are synchronous and run back to back on the JS thread
 * (Init + Encrypt never interleave); mutating operations are additionally serialized by a mutex.
 * The loaded module is shared per module path inside the process (C_Initialize once, refcounted).
 */
import { createRequire } from 'node:module';
import type * as G from 'graphene-pk11';

/** graphene-pk11 (and pkcs11js under it), loaded on first use: only a gateway with a PKCS#11 CMK pays its memory. */
let grapheneModule: typeof G | undefined;
const graphene = (): typeof G => (grapheneModule ??= createRequire(import.meta.url)('graphene-pk11') as typeof G);
import { S3Error } from '../errors.ts';
import { Mutex } from './local-cmk.ts';
import type { CmkProvider, CmkVersionInfo, WrappedKey } from './types.ts';

const NONCE = 12;
const TAG = 16;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface Pkcs11CmkOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Token label (trailing spaces ignored). */
  tokenLabel: string;
  /** User PIN. */
  pin: string;
  /** Key label prefix on the token (`<keyLabel>-v<N>`); default the id. */
  keyLabel?: string;
  /** Logical CMK name (tenant); also the key label prefix (`<id>-v<N>`) when no keyLabel is given. */
  id: string;
}

interface StateDoc {
  seq: number;
  versions: CmkVersionInfo[];
}

interface ModuleRef {
  mod: G.Module;
  refs: number;
}
const modules = new Map<string, ModuleRef>();

function acquireModule(file: string): G.Module {
  let r = modules.get(file);
  if (!r) {
    const mod = graphene().Module.load(file, 'lakecrypt');
    try {
      mod.initialize();
    } catch (e) {
      if (!/CRYPTOKI_ALREADY_INITIALIZED/.test(String((e as Error).message))) throw e;
    }
    r = { mod, refs: 0 };
    modules.set(file, r);
  }
  r.refs++;
  return r.mod;
}

function releaseModule(file: string): void {
  const r = modules.get(file);
  if (!r) return;
  if (--r.refs <= 0) {
    modules.delete(file);
    try {
      r.mod.finalize();
    } catch {
      /* already finalized */
    }
  }
}

const errCode = (e: unknown): string => String((e as Error)?.message ?? e);

export interface Pkcs11KeyInspection {
  label: string;
  extractable: boolean;
  sensitive: boolean;
  neverExtractable: boolean;
  alwaysSensitive: boolean;
  /** Result of trying to read CKA_VALUE: always false for a correctly created CMK. */
  valueReadable: boolean;
  valueError?: string;
  /** Result of trying to wrap (export) the key under another key: always false. */
  wrapExportable: boolean;
  wrapError?: string;
}

export class Pkcs11CmkProvider implements CmkProvider {
  readonly kind = 'pkcs11' as const;
  readonly id: string;
  // ES-private: the options hold the PIN, which must not show in JSON.stringify or util.inspect of a provider.
  readonly #opts: Pkcs11CmkOptions;
  private readonly mutex = new Mutex();
  private session?: G.Session;
  private initP?: Promise<void>;
  private state?: StateDoc;
  private readonly handles = new Map<number, G.SecretKey>();
  private closed = false;

  constructor(opts: Pkcs11CmkOptions) {
    if (!ID_RE.test(opts.id)) throw new S3Error('InvalidArgument', `invalid CMK id: ${opts.id}`);
    this.id = opts.id;
    this.#opts = { ...opts };
  }

  /** Objects on the token are named after `keyLabel` when given (a tenant's key label), else after the id. */
  private get labelBase(): string {
    return this.#opts.keyLabel ?? this.id;
  }
  private label(v: number): string {
    return `${this.labelBase}-v${v}`;
  }
  private stateLabel(): string {
    return `${this.labelBase}-state`;
  }

  /** Opens the token session, logs in, creates v1 on first start. Idempotent; called lazily by every method. */
  init(): Promise<void> {
    this.initP ??= this.mutex.run(() => {
      if (this.closed) throw new S3Error('ServiceUnavailable', 'PKCS#11 provider closed');
      const mod = acquireModule(this.#opts.module);
      try {
        const slots = mod.getSlots(true);
        let slot: G.Slot | undefined;
        for (let i = 0; i < slots.length; i++) {
          const s = slots.items(i);
          if (s.getToken().label.trim() === this.#opts.tokenLabel.trim()) {
            slot = s;
            break;
          }
        }
        if (!slot) throw new S3Error('ServiceUnavailable', `PKCS#11 token "${this.#opts.tokenLabel}" not found`);
        const session = slot.open(graphene().SessionFlag.SERIAL_SESSION | graphene().SessionFlag.RW_SESSION);
        try {
          session.login(this.#opts.pin, graphene().UserType.USER);
        } catch (e) {
          if (!/USER_ALREADY_LOGGED_IN/.test(errCode(e))) {
            session.close();
            throw new S3Error('ServiceUnavailable', 'PKCS#11 login failed', {}, { cause: e });
          }
        }
        this.session = session;
      } catch (e) {
        releaseModule(this.#opts.module);
        throw e;
      }
      const st = this.readState();
      if (st) {
        this.state = st;
      } else {
        this.generateKey(1);
        this.writeState({ seq: 0, versions: [{ version: 1, state: 'active', createdAt: new Date().toISOString() }] });
      }
    });
    this.initP.catch(() => (this.initP = undefined));
    return this.initP;
  }

  private get s(): G.Session {
    if (!this.session) throw new S3Error('ServiceUnavailable', 'PKCS#11 session not open');
    return this.session;
  }

  private generateKey(v: number): G.SecretKey {
    const key = this.s.generateKey(graphene().KeyGenMechanism.AES, {
      keyType: graphene().KeyType.AES,
      label: this.label(v),
      id: Buffer.from(this.label(v)),
      valueLen: 32,
      token: true,
      private: true,
      extractable: false,
      sensitive: true,
      modifiable: true,
      encrypt: true,
      decrypt: true,
      wrap: true,
      unwrap: true,
    });
    this.handles.set(v, key);
    return key;
  }

  private findKey(v: number): G.SecretKey | null {
    const cached = this.handles.get(v);
    if (cached) return cached;
    const found = this.s.find({ class: graphene().ObjectClass.SECRET_KEY, label: this.label(v) });
    if (found.length === 0) return null;
    const key = found.items(0).toType<G.SecretKey>();
    this.handles.set(v, key);
    return key;
  }

  private stateObjects(): { obj: G.SessionObject; doc: StateDoc }[] {
    const found = this.s.find({ class: graphene().ObjectClass.DATA, label: this.stateLabel() });
    const out: { obj: G.SessionObject; doc: StateDoc }[] = [];
    for (let i = 0; i < found.length; i++) {
      const obj = found.items(i);
      try {
        const raw = obj.getAttribute({ value: null }).value as Buffer;
        const doc = JSON.parse(raw.toString('utf8')) as StateDoc;
        if (typeof doc.seq === 'number' && Array.isArray(doc.versions)) out.push({ obj, doc });
      } catch {
        /* ignore a corrupt/partial object */
      }
    }
    return out.sort((a, b) => b.doc.seq - a.doc.seq);
  }

  private readState(): StateDoc | null {
    const all = this.stateObjects();
    return all[0]?.doc ?? null;
  }

  private writeState(doc: StateDoc): void {
    const olds = this.stateObjects();
    const next: StateDoc = { seq: Math.max(doc.seq, olds[0]?.doc.seq ?? 0) + 1, versions: doc.versions };
    this.s.create({
      class: graphene().ObjectClass.DATA,
      token: true,
      private: true,
      modifiable: true,
      label: this.stateLabel(),
      application: 'lakecrypt',
      value: Buffer.from(JSON.stringify(next)),
    });
    for (const o of olds) {
      try {
        o.obj.destroy();
      } catch {
        /* another process may have removed it */
      }
    }
    this.state = next;
  }

  private refreshState(): StateDoc {
    const st = this.readState();
    if (!st) throw new S3Error('InternalError', `PKCS#11 CMK ${this.id}: state object missing`);
    this.state = st;
    return st;
  }

  private mechCKI(iv: Buffer, aad: Buffer): { mechanism: number; parameter: unknown } {
    const g = graphene();
    const p = new g.AesGcmParams(iv, aad, 128);
    return { mechanism: g.MechanismEnum.AES_GCM, parameter: p.toCKI() };
  }

  async wrap(plaintextKey: Buffer, aad: Buffer): Promise<WrappedKey> {
    await this.init();
    try {
      return this.wrapOnce(plaintextKey, aad);
    } catch (e) {
      // The version we believed active was disabled/destroyed by another process: retry once on fresh state.
      if (!(e instanceof S3Error && e.code === 'KeyRevoked')) throw e;
      this.refreshState();
      return this.wrapOnce(plaintextKey, aad);
    }
  }

  private wrapOnce(plaintextKey: Buffer, aad: Buffer): WrappedKey {
    const st = this.state!;
    const active = st.versions.filter((v) => v.state === 'active').sort((a, b) => b.version - a.version)[0];
    if (!active) throw new S3Error('KeyRevoked', `no active version of CMK ${this.id}`);
    const key = this.findKey(active.version);
    if (!key) throw new S3Error('KeyRevoked', `CMK ${this.id} v${active.version} missing from token`);
    if (plaintextKey.length === 0 || plaintextKey.length > 1024) throw new S3Error('InvalidArgument', 'key material size');
    const s = this.s;
    const iv = s.generateRandom(NONCE);
    try {
      s.lib.C_EncryptInit(s.handle, this.mechCKI(iv, aad) as never, key.handle);
      const out = s.lib.C_Encrypt(s.handle, plaintextKey, Buffer.alloc(plaintextKey.length + TAG));
      return { cmkId: this.id, cmkVersion: active.version, blob: Buffer.concat([iv, out]) };
    } catch (e) {
      this.handles.delete(active.version);
      if (/KEY_FUNCTION_NOT_PERMITTED|HANDLE_INVALID/.test(errCode(e))) {
        throw new S3Error('KeyRevoked', `CMK ${this.id} v${active.version} is disabled`);
      }
      throw new S3Error('ServiceUnavailable', 'PKCS#11 wrap failed', {}, { cause: e });
    }
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Buffer> {
    await this.init();
    if (wrapped.cmkId !== this.id) throw new S3Error('IntegrityError', `wrapped under CMK ${wrapped.cmkId}, not ${this.id}`);
    const v = wrapped.cmkVersion;
    const blob = wrapped.blob;
    if (blob.length < NONCE + TAG) throw new S3Error('IntegrityError', 'wrapped key blob too short');
    let known = this.state!.versions.find((x) => x.version === v);
    if (!known || known.state === 'destroyed') known = this.refreshState().versions.find((x) => x.version === v);
    if (!known) throw new S3Error('IntegrityError', `unknown CMK version ${v}`);
    if (known.state === 'destroyed') throw new S3Error('KeyRevoked', `CMK ${this.id} v${v} is destroyed`);
    const s = this.s;
    for (let attempt = 0; attempt < 2; attempt++) {
      const key = this.findKey(v);
      if (!key) {
        this.refreshState();
        throw new S3Error('KeyRevoked', `CMK ${this.id} v${v} is destroyed`);
      }
      try {
        s.lib.C_DecryptInit(s.handle, this.mechCKI(blob.subarray(0, NONCE), aad) as never, key.handle);
      } catch (e) {
        const c = errCode(e);
        if (/KEY_FUNCTION_NOT_PERMITTED/.test(c)) {
          this.refreshState();
          throw new S3Error('KeyRevoked', `CMK ${this.id} v${v} is disabled`);
        }
        if (/HANDLE_INVALID/.test(c) && attempt === 0) {
          this.handles.delete(v);
          continue;
        }
        throw new S3Error('ServiceUnavailable', 'PKCS#11 unwrap failed', {}, { cause: e });
      }
      try {
        const body = blob.subarray(NONCE);
        const out = Buffer.alloc(body.length);
        const pt = s.lib.C_Decrypt(s.handle, body, out);
        const res = Buffer.from(pt);
        out.fill(0);
        return res;
      } catch (e) {
        throw new S3Error('IntegrityError', 'wrapped key failed authentication', {}, { cause: e });
      }
    }
    throw new S3Error('ServiceUnavailable', 'PKCS#11 unwrap failed');
  }

  async versions(): Promise<CmkVersionInfo[]> {
    await this.init();
    return this.refreshState().versions.map((v) => ({ ...v }));
  }

  async rotate(): Promise<CmkVersionInfo> {
    await this.init();
    return this.mutex.run(() => {
      const st = this.refreshState();
      const next = Math.max(0, ...st.versions.map((v) => v.version)) + 1;
      this.generateKey(next);
      const info: CmkVersionInfo = { version: next, state: 'active', createdAt: new Date().toISOString() };
      this.writeState({ seq: st.seq, versions: [...st.versions.map((x) => ({ ...x })), info] });
      return { ...info };
    });
  }

  private async setEnabled(version: number, enabled: boolean): Promise<void> {
    await this.init();
    await this.mutex.run(() => {
      const st = this.refreshState();
      const v = st.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
      if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
      const key = this.findKey(version);
      if (!key) throw new S3Error('InternalError', `CMK ${this.id} v${version} missing from token`);
      key.setAttribute({ encrypt: enabled, decrypt: enabled });
      const versions = st.versions.map((x) => (x.version === version ? { ...x, state: enabled ? ('active' as const) : ('disabled' as const) } : { ...x }));
      this.writeState({ seq: st.seq, versions });
    });
  }

  disable(version: number): Promise<void> {
    return this.setEnabled(version, false);
  }

  enable(version: number): Promise<void> {
    return this.setEnabled(version, true);
  }

  async destroy(version: number): Promise<void> {
    await this.init();
    await this.mutex.run(() => {
      const st = this.refreshState();
      const v = st.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
      const key = this.findKey(version);
      this.handles.delete(version);
      if (key) key.destroy();
      const versions = st.versions.map((x) => (x.version === version ? { ...x, state: 'destroyed' as const } : { ...x }));
      this.writeState({ seq: st.seq, versions });
    });
  }

  async ping(): Promise<void> {
    await this.init();
    try {
      this.s.generateRandom(1);
    } catch (e) {
      throw new S3Error('ServiceUnavailable', 'PKCS#11 token not reachable', {}, { cause: e });
    }
  }

  /** Diagnostics: attributes of a version's key, and proof that its value cannot be read or exported. */
  async inspectKey(version: number): Promise<Pkcs11KeyInspection> {
    await this.init();
    const key = this.findKey(version);
    if (!key) throw new S3Error('InvalidArgument', `CMK ${this.id} v${version} not on token`);
    const a = key.getAttribute({ extractable: null, sensitive: null, neverExtractable: null, alwaysSensitive: null }) as Record<string, boolean>;
    const res: Pkcs11KeyInspection = {
      label: this.label(version),
      extractable: a.extractable,
      sensitive: a.sensitive,
      neverExtractable: a.neverExtractable,
      alwaysSensitive: a.alwaysSensitive,
      valueReadable: false,
      wrapExportable: false,
    };
    try {
      const v = key.getAttribute({ value: null }).value as Buffer | undefined;
      res.valueReadable = !!v && v.length > 0;
      v?.fill(0);
    } catch (e) {
      res.valueError = errCode(e);
    }
    // Try to export it wrapped under a throwaway session key.
    let tmp: G.SecretKey | undefined;
    try {
      tmp = this.s.generateKey(graphene().KeyGenMechanism.AES, {
        keyType: graphene().KeyType.AES, valueLen: 32, token: false, wrap: true, unwrap: true, encrypt: true, decrypt: true,
      });
      const w = this.s.wrapKey({ name: 'AES_KEY_WRAP', params: null }, tmp, key);
      res.wrapExportable = w.length > 0;
    } catch (e) {
      res.wrapError = errCode(e);
    } finally {
      try {
        tmp?.destroy();
      } catch {
        /* ignore */
      }
    }
    return res;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.initP?.catch(() => undefined);
    this.handles.clear();
    if (this.session) {
      try {
        this.session.close();
      } catch {
        /* ignore */
      }
      this.session = undefined;
      releaseModule(this.#opts.module);
    }
  }
}
