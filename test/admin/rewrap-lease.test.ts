/**
 * One re-wrap job per dataset across gateways: two RewrapManagers (two gateways: own KeyService, own process id)
 * on the shared MinIO. The job's state object carries a lease; a live lease is left alone, a lapsed one (a
 * crashed gateway) is taken over, an owner whose lease was taken stops at its next write without marking the job
 * failed, and a clean stop hands the job on at once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/types.ts';
import { RewrapManager, rewrapStatePath, type RewrapState } from '../../src/admin/rewrap.ts';
import type { AuditLog } from '../../src/keys/audit.ts';
import { readStateTagged, writeState } from '../../src/admin/util.ts';
import { CHUNK_SIZE, newDeks } from '../../src/engine/index.ts';
import { KeyService } from '../../src/keys/service.ts';
import { LocalCmkProvider } from '../../src/keys/local-cmk.ts';
import { META_FMT, META_OID, ObjectStore } from '../../src/store/index.ts';
import { minioBackend, uniqueBucket } from '../helpers/s3.ts';
import { markLegacyDataset } from './helpers.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';

const N = 40;
let backend: Backend;
let tmp: TmpDir;
const metaBucket = uniqueBucket('lease-meta');
const gateways: { keys: KeyService; store: ObjectStore }[] = [];
const managers: RewrapManager[] = [];

beforeAll(async () => {
  backend = minioBackend();
  tmp = makeTmpDir('lc-lease-');
  for (let i = 0; i < 2; i++) {
    const keys = new KeyService({ backend, metaBucket, cmks: { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) }, defaultCmk: 'default' });
    await keys.start();
    gateways.push({ keys, store: new ObjectStore(backend, keys, metaBucket, CHUNK_SIZE) });
  }
});
afterAll(async () => {
  await Promise.allSettled(managers.map((m) => m.close()));
  for (const g of gateways) await g.keys.stop();
  await backend.close();
  tmp.cleanup();
});

function manager(g: number, opts: { leaseMs?: number; ratePerSec?: number } = {}): RewrapManager {
  const { keys, store } = gateways[g]!;
  const m = new RewrapManager({ backend, store, keys, metaBucket, concurrency: 4, ...opts });
  managers.push(m);
  return m;
}

/**
 * A dataset from before header format 2: N objects with format-1 headers (sealed under the KEK version; written
 * directly, 1-byte data objects), rotated once, seen rotated by both. Its re-wrap reseals every header.
 */
async function rotatedDataset(): Promise<string> {
  const bucket = uniqueBucket('lease');
  await backend.createBucket(bucket);
  const { keys, store } = gateways[0]!;
  const { version } = await keys.activeKek(bucket);
  await markLegacyDataset(keys, bucket);
  for (let i = 0; i < N; i++) {
    const key = `o/${i}`;
    const oid = randomBytes(16);
    await store.writeHeader({
      version: 1, dataset: bucket, keyNumber: version, oid, bucket, key, state: 'final', createdAt: Date.now(), blockSize: CHUNK_SIZE, chunkSize: CHUNK_SIZE,
      parts: [{ partNumber: 1, plaintextSize: 100, deks: newDeks(1) }], meta: { user: {} }, checksums: {},
    });
    await backend.putObject(bucket, key, Buffer.alloc(1), { size: 1, meta: { [META_OID]: oid.toString('hex'), [META_FMT]: '1' } });
  }
  const next = await keys.rotate(bucket);
  // the other gateway sees the rotation through the keystore epoch poll
  for (let t = Date.now(); (await gateways[1]!.keys.activeKek(bucket)).version !== next; ) {
    if (Date.now() - t > 5000) throw new Error('gateway 1 never saw the rotation');
    await new Promise((r) => setTimeout(r, 50));
  }
  return bucket;
}

const stateOf = async (dataset: string) => (await readStateTagged<RewrapState>(backend, metaBucket, rewrapStatePath(dataset)))!.value;
const waitUntil = async (what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) => {
  for (const t = Date.now(); !(await cond()); ) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe('re-wrap job lease', () => {
  it('runs on one gateway only: a second start on another gateway leaves the live job alone', async () => {
    const ds = await rotatedDataset();
    const a = manager(0, { ratePerSec: 100 });
    const b = manager(1);
    const started = await a.start(ds, 'a');
    expect(started.owner).toBe(a.instance);
    const other = await b.start(ds, 'b');
    expect(other.owner).toBe(a.instance);
    expect(b.isRunning(ds)).toBe(false);
    expect(await b.resumeAll()).toEqual([]);
    const done = (await a.wait(ds))!;
    expect(done).toMatchObject({ state: 'done', rewrapped: N, retries: 0, failed: 0, pending: 0, dataBytesRead: 0 });
    expect((await stateOf(ds)).owner).toBe(a.instance);
  });

  it('takes over a job whose gateway died once its lease lapses, not before', async () => {
    const ds = await rotatedDataset();
    const b = manager(1, { leaseMs: 400 });
    const { version } = await gateways[1]!.keys.activeKek(ds);
    const dead: Partial<RewrapState> = {
      dataset: ds, state: 'running', phase: 'headers', targetVersion: version, actor: 'dead', startedAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(), total: 0, done: 0, rewrapped: 0, alreadyCurrent: 0, skipped: 0, failed: 0, retries: 0,
      dataBytesRead: 0, errors: [], owner: 'dead-gateway', leaseUntil: new Date(Date.now() + 1500).toISOString(),
    };
    await writeState(backend, metaBucket, rewrapStatePath(ds), dead);
    expect((await b.start(ds, 'b')).owner).toBe('dead-gateway');
    expect(await b.resumeAll()).toEqual([]);
    expect(b.isRunning(ds)).toBe(false);
    await new Promise((r) => setTimeout(r, 1600));
    expect(await b.resumeAll()).toEqual([ds]);
    const done = (await b.wait(ds))!;
    expect(done).toMatchObject({ state: 'done', rewrapped: N, pending: 0, owner: b.instance });
  });

  it('a gateway whose lease was taken stops at its next write and does not mark the job failed', async () => {
    const ds = await rotatedDataset();
    const a = manager(0, { leaseMs: 300, ratePerSec: 10 });
    await a.start(ds, 'a');
    await waitUntil('a few headers re-wrapped', async () => (await a.status(ds))!.done >= 2);
    // another gateway takes the job (as after a lapse): a write that does not know a's version
    const taken = { ...(await stateOf(ds)), owner: 'usurper', leaseUntil: new Date(Date.now() + 60_000).toISOString() };
    await writeState(backend, metaBucket, rewrapStatePath(ds), taken);
    const last = (await a.wait(ds))!;
    expect(a.isRunning(ds)).toBe(false);
    expect(last.state).toBe('running');
    // it stopped well before the end (10 headers/s): most headers are still on the old version
    const scan = await a.scan(ds);
    expect(scan.pending).toBeGreaterThan(N / 2);
    const stored = await stateOf(ds);
    expect(stored).toMatchObject({ owner: 'usurper', state: 'running' });
  });

  it('a clean stop lets the lease go: another gateway resumes at once from the progress written', async () => {
    const ds = await rotatedDataset();
    const a = manager(0, { ratePerSec: 20 });
    const b = manager(1);
    await a.start(ds, 'a');
    await waitUntil('a page of progress', async () => (await a.status(ds))!.done >= 4);
    await a.close();
    const handed = await stateOf(ds);
    expect(handed.state).toBe('running');
    expect(Date.parse(handed.leaseUntil!)).toBeLessThanOrEqual(Date.now());
    expect(await b.resumeAll()).toEqual([ds]);
    const done = (await b.wait(ds))!;
    expect(done).toMatchObject({ state: 'done', pending: 0, owner: b.instance });
    // what a re-wrapped before its stop, b found already current: nothing was done twice
    expect(done.rewrapped + done.alreadyCurrent).toBe(N);
    expect(done.alreadyCurrent).toBeGreaterThan(0);
  });

  it('a re-key asked for while the previous job is done but still letting go starts the re-key, not that job', async () => {
    const ds = await rotatedDataset();
    // the job's last steps (its audit entry, its lease) held open: the window in which its state file says done
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let finishing = false;
    const audit = {
      append: async (kind: string) => {
        if (kind === 'rewrap.done' && !finishing) {
          finishing = true;
          await held;
        }
      },
    } as unknown as AuditLog;
    const { keys, store } = gateways[0]!;
    const m = new RewrapManager({ backend, store, keys, metaBucket, concurrency: 4, audit, rekeyGraceMs: 0 });
    managers.push(m);
    await m.start(ds, 'test');
    await waitUntil('the first job is done but has not let go', () => finishing);
    expect((await stateOf(ds)).state).toBe('done');
    const asked = m.start(ds, 'test', { rekey: true });
    release();
    const rekey = await asked;
    expect(rekey.state).toBe('running');
    expect(rekey.rekeyTo).toBeGreaterThan(0);
    expect(await m.wait(ds)).toMatchObject({ state: 'done', mode: 'headers', failed: 0 });
  }, 120_000);
});
