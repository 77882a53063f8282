/**
 * `local` CMK provider: one random 32-byte key file per CMK version at `<dataDir>/cmk/<id>/v<N>.key` (0600,
 * directory 0700) and `state.json` with the version states. Wrap = AES-256-GCM, random 12-byte nonce, the caller's
 * AAD; blob = nonce(12) || ciphertext || tag(16).
 *
 * Key files and state are re-read on every operation (no long-lived copy of the CMK in memory; the KEK cache above
 * keeps the number of unwraps small), and the key Buffer is zeroed right after use.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { S3Error } from '../errors.ts';
import { openBlob, sealBlob } from '../format/aead.ts';
import type { CmkProvider, CmkVersionInfo, WrappedKey } from './types.ts';

const NONCE = 12;
const TAG = 16;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface StateFile {
  id: string;
  versions: CmkVersionInfo[];
}

export interface LocalCmkOptions {
  /** Logical CMK name (tenant). */
  id: string;
  /** Gateway data directory; keys live under `<dataDir>/cmk/<id>/`. */
  dataDir: string;
}

/** Serializes async critical sections. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

export function gcmSeal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  return sealBlob(key, plaintext, { aad });
}

/** Throws IntegrityError if the blob does not authenticate. */
export function gcmOpen(key: Buffer, blob: Buffer, aad: Buffer): Buffer {
  if (blob.length < NONCE + TAG) throw new S3Error('IntegrityError', 'wrapped key blob too short');
  const pt = openBlob(key, blob, { aad });
  if (pt === null) throw new S3Error('IntegrityError', 'wrapped key failed authentication');
  return pt;
}

export class LocalCmkProvider implements CmkProvider {
  readonly kind = 'local' as const;
  readonly id: string;
  readonly dir: string;
  private readonly mutex = new Mutex();
  private initP?: Promise<void>;

  constructor(opts: LocalCmkOptions) {
    if (!ID_RE.test(opts.id)) throw new S3Error('InvalidArgument', `invalid CMK id: ${opts.id}`);
    this.id = opts.id;
    this.dir = path.join(opts.dataDir, 'cmk', opts.id);
  }

  private statePath(): string {
    return path.join(this.dir, 'state.json');
  }
  private keyPath(v: number): string {
    return path.join(this.dir, `v${v}.key`);
  }

  /** Creates the directory, v1 and state.json on first start. Idempotent; called lazily by every method. */
  init(): Promise<void> {
    this.initP ??= this.mutex.run(async () => {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await fsp.chmod(this.dir, 0o700);
      const st = await this.readState().catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return null;
        throw e;
      });
      if (st) return;
      await this.createKeyFile(1);
      await this.writeState({ id: this.id, versions: [{ version: 1, state: 'active', createdAt: new Date().toISOString() }] });
    });
    this.initP.catch(() => (this.initP = undefined));
    return this.initP;
  }

  private async createKeyFile(v: number): Promise<void> {
    const key = randomBytes(32);
    try {
      // 'wx': never overwrite an existing key file.
      await fsp.writeFile(this.keyPath(v), key, { mode: 0o600, flag: 'wx' });
    } finally {
      key.fill(0);
    }
  }

  private async readState(): Promise<StateFile> {
    const raw = await fsp.readFile(this.statePath(), 'utf8');
    const st = JSON.parse(raw) as StateFile;
    if (!Array.isArray(st.versions)) throw new Error('corrupt CMK state.json');
    return st;
  }

  private async writeState(st: StateFile): Promise<void> {
    const tmp = `${this.statePath()}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(st, null, 2), { mode: 0o600 });
    await fsp.rename(tmp, this.statePath());
  }

  private async readKey(v: number): Promise<Buffer> {
    try {
      const key = await fsp.readFile(this.keyPath(v));
      if (key.length !== 32) {
        key.fill(0);
        throw new S3Error('InternalError', `CMK ${this.id} v${v} key file is corrupt`);
      }
      return key;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new S3Error('KeyRevoked', `CMK ${this.id} v${v} is destroyed`);
      throw e;
    }
  }

  private static active(st: StateFile): CmkVersionInfo {
    const a = st.versions.filter((v) => v.state === 'active').sort((x, y) => y.version - x.version)[0];
    if (!a) throw new S3Error('KeyRevoked', 'no active CMK version');
    return a;
  }

  async wrap(plaintextKey: Buffer, aad: Buffer): Promise<WrappedKey> {
    await this.init();
    const st = await this.readState();
    const a = LocalCmkProvider.active(st);
    const key = await this.readKey(a.version);
    try {
      return { cmkId: this.id, cmkVersion: a.version, blob: gcmSeal(key, plaintextKey, aad) };
    } finally {
      key.fill(0);
    }
  }

  async unwrap(wrapped: WrappedKey, aad: Buffer): Promise<Buffer> {
    await this.init();
    if (wrapped.cmkId !== this.id) throw new S3Error('IntegrityError', `wrapped under CMK ${wrapped.cmkId}, not ${this.id}`);
    const st = await this.readState();
    const v = st.versions.find((x) => x.version === wrapped.cmkVersion);
    if (!v) throw new S3Error('IntegrityError', `unknown CMK version ${wrapped.cmkVersion}`);
    if (v.state !== 'active') throw new S3Error('KeyRevoked', `CMK ${this.id} v${v.version} is ${v.state}`);
    const key = await this.readKey(v.version);
    try {
      return gcmOpen(key, wrapped.blob, aad);
    } finally {
      key.fill(0);
    }
  }

  async versions(): Promise<CmkVersionInfo[]> {
    await this.init();
    return (await this.readState()).versions.map((v) => ({ ...v }));
  }

  async rotate(): Promise<CmkVersionInfo> {
    await this.init();
    return this.mutex.run(async () => {
      const st = await this.readState();
      const next = Math.max(0, ...st.versions.map((v) => v.version)) + 1;
      await this.createKeyFile(next);
      const info: CmkVersionInfo = { version: next, state: 'active', createdAt: new Date().toISOString() };
      st.versions.push(info);
      await this.writeState(st);
      return { ...info };
    });
  }

  private async setState(version: number, state: 'active' | 'disabled'): Promise<void> {
    await this.init();
    await this.mutex.run(async () => {
      const st = await this.readState();
      const v = st.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
      if (v.state === 'destroyed') throw new S3Error('InvalidRequest', `CMK ${this.id} v${version} is destroyed`);
      v.state = state;
      await this.writeState(st);
    });
  }

  disable(version: number): Promise<void> {
    return this.setState(version, 'disabled');
  }

  enable(version: number): Promise<void> {
    return this.setState(version, 'active');
  }

  async destroy(version: number): Promise<void> {
    await this.init();
    await this.mutex.run(async () => {
      const st = await this.readState();
      const v = st.versions.find((x) => x.version === version);
      if (!v) throw new S3Error('InvalidArgument', `CMK ${this.id} has no version ${version}`);
      // the state first (nothing uses the version from here on, readiness skips it), then the file is wiped; a
      // crash in between leaves the file, which a repeated destroy (the sweep retries) wipes
      if (v.state !== 'destroyed') {
        v.state = 'destroyed';
        await this.writeState(st);
      }
      const p = this.keyPath(version);
      try {
        const fh = await fsp.open(p, 'r+');
        try {
          const { size } = await fh.stat();
          await fh.write(randomBytes(size), 0, size, 0);
          await fh.write(Buffer.alloc(size), 0, size, 0);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fsp.unlink(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    });
  }

  async ping(): Promise<void> {
    await this.init();
    // readiness = the state file and every non-destroyed key file are readable (an all-disabled CMK is still "up")
    const st = await this.readState();
    for (const v of st.versions) {
      if (v.state === 'destroyed') continue;
      try {
        await fsp.access(this.keyPath(v.version), fsp.constants.R_OK);
      } catch (e) {
        // a destroy (e.g. the sweep, when a scheduled destruction is due) removes the file just before it writes
        // the state: a version that is destroyed by now is not a failure
        const now = (await this.readState()).versions.find((x) => x.version === v.version);
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && now?.state === 'destroyed') continue;
        throw e;
      }
    }
  }

  async close(): Promise<void> {
    // nothing held open
  }
}
