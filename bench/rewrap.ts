/**
 * Re-wrap rate: N object headers (format 2, as the gateway writes them) on MinIO, rotate the dataset KEK, run the
 * re-wrap job, report headers/s and the data bytes read (must be 0); then prove the result — destroy the old KEK
 * version and open every header — and run a re-key (every header resealed under a fresh header key: the
 * per-header path, also what a dataset from before format 2 takes once) for its rate beside the backend's own
 * ceiling for that I/O. Headers are written directly through ObjectStore.writeHeader next to tiny data objects
 * (the job only lists data keys, it never reads them), which saves the set-up time of N real PUTs.
 *
 *   npx tsx bench/rewrap.ts [N=20000]        (MinIO: $LAKECRYPT_TEST_MINIO_ENDPOINT or a private one started here)
 * Env: REWRAP_CONCURRENCY (default 64).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBackend } from '../src/backend/index.ts';
import { CHUNK_SIZE, newDeks } from '../src/engine/index.ts';
import { KeyService } from '../src/keys/service.ts';
import { LocalCmkProvider } from '../src/keys/local-cmk.ts';
import { ObjectStore, META_OID, META_FMT } from '../src/store/index.ts';
import { RewrapManager } from '../src/admin/rewrap.ts';
import { forEachLimit, listPages } from '../src/admin/util.ts';
import { startMinio, type MinioHandle } from '../tools/minio.ts';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { makeClient } from './lib/s3.ts';
import { makeTmpDir } from '../tools/tmp.ts';

const N = Number(process.argv[2] ?? 20000);
const CONC = Number(process.env.REWRAP_CONCURRENCY ?? 64);

async function main() {
  let minio: MinioHandle | undefined;
  let coords = { endpoint: process.env.LAKECRYPT_TEST_MINIO_ENDPOINT, accessKey: process.env.LAKECRYPT_TEST_MINIO_ACCESS_KEY ?? 'minioadmin', secretKey: process.env.LAKECRYPT_TEST_MINIO_SECRET_KEY ?? 'minioadmin' };
  if (!coords.endpoint) {
    minio = await startMinio();
    coords = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
  }
  const tmp = makeTmpDir('lc-bench-rewrap-');
  const backend = createBackend({ kind: 's3', endpoint: coords.endpoint!, accessKey: coords.accessKey, secretKey: coords.secretKey, region: 'us-east-1' });
  const metaBucket = `bmeta-${randomBytes(4).toString('hex')}`;
  const bucket = `bdata-${randomBytes(4).toString('hex')}`;
  const keys = new KeyService({ backend, metaBucket, cmks: { default: new LocalCmkProvider({ id: 'default', dataDir: tmp.path }) }, defaultCmk: 'default' });
  await keys.start();
  await backend.createBucket(bucket);
  const store = new ObjectStore(backend, keys, metaBucket, 65536);
  const { version: oldVersion } = await keys.activeKek(bucket);
  const hk = await keys.activeHeaderKeyNumber(bucket);

  const t0 = performance.now();
  const deks = newDeks(1);
  await forEachLimit(
    Array.from({ length: N }, (_, i) => i),
    CONC,
    async (i) => {
      const key = `part-${String(i).padStart(6, '0')}.parquet`;
      const oid = randomBytes(16);
      await store.writeHeader({
        version: 2, dataset: bucket, keyNumber: hk, oid, bucket, key, state: 'final', createdAt: Date.now(), blockSize: 65536, chunkSize: CHUNK_SIZE,
        parts: [{ partNumber: 1, plaintextSize: 100, deks }], meta: { user: {} }, checksums: {},
      });
      await backend.putObject(bucket, key, Buffer.alloc(1), { size: 1, meta: { [META_OID]: oid.toString('hex'), [META_FMT]: '1' } });
    },
  );
  const setupS = (performance.now() - t0) / 1000;
  await keys.rotate(bucket);

  const rewrap = new RewrapManager({ backend, store, keys, metaBucket, concurrency: CONC });
  const t1 = performance.now();
  await rewrap.start(bucket, 'bench');
  const job = (await rewrap.wait(bucket))!;
  const jobS = Math.max(0.001, (performance.now() - t1) / 1000);
  if (job.state !== 'done' || job.pending !== 0) throw new Error(`re-wrap job ended ${job.state}, pending ${job.pending}`);
  // Proof, not timed: a full scan of every header, then the old version destroyed and every header opened.
  const t2 = performance.now();
  const scan = await rewrap.scan(bucket);
  const scanS = (performance.now() - t2) / 1000;
  if (scan.total !== N || scan.pending !== 0) throw new Error(`scan after the job: ${scan.total} headers, ${scan.pending} pending`);
  // scheduled with a waiting period of zero (the admin API never allows less than keyDeletionWaitSeconds), then due
  await keys.kekDestruction.scheduleDestroy(bucket, oldVersion, { destroyAt: new Date(), actor: 'bench', force: false, referencingHeaders: 0 });
  if (!(await keys.kekDestruction.destroy(bucket, oldVersion, { actor: 'bench' }))) throw new Error(`v${oldVersion} was not destroyed`);
  keys.clearCaches();
  store.headers.clear();
  let opened = 0;
  for await (const page of listPages(backend, bucket, '')) {
    await forEachLimit(page, CONC, async (o) => {
      const info = await backend.headObject(bucket, o.key);
      await store.readHeader(bucket, o.key, info!.meta[META_OID]!);
      opened++;
    });
  }
  if (opened !== N) throw new Error(`opened ${opened} of ${N} headers after destroying v${oldVersion}`);
  const openS = (performance.now() - t2) / 1000 - scanS;

  // The per-header path: a re-key reseals every header under a fresh header key (as a dataset from before
  // format 2 does once). Its ceiling is the backend's GET + If-Match overwrite rate measured below.
  const t8 = performance.now();
  await rewrap.start(bucket, 'bench', { rekey: true });
  const rekeyJob = (await rewrap.wait(bucket))!;
  const rekeyS = (performance.now() - t8) / 1000;
  if (rekeyJob.state !== 'done' || rekeyJob.rewrapped !== N) throw new Error(`re-key ended ${rekeyJob.state}, ${rekeyJob.rewrapped} of ${N} resealed`);

  // The gateway-side cost alone (open under the old KEK + reseal under the new one, no I/O): what the job could
  // do if the backend kept up.
  const { openHeader, sealHeader } = await import('../src/engine/index.ts');
  const oldKek = randomBytes(32);
  const newKek = randomBytes(32);
  const sample = sealHeader({
    version: 2, dataset: bucket, keyNumber: 1, oid: randomBytes(16), bucket, key: 'part-000001.parquet', state: 'final', createdAt: Date.now(), blockSize: 65536, chunkSize: CHUNK_SIZE,
    parts: [{ partNumber: 1, plaintextSize: 100, deks: newDeks(1) }], meta: { user: {} }, checksums: {},
  }, oldKek);
  const cpuN = 20000;
  const t3 = performance.now();
  for (let i = 0; i < cpuN; i++) sealHeader({ ...openHeader(sample, { bucket, key: 'part-000001.parquet' }, oldKek), keyNumber: 2 }, newKek);
  const cpuPerS = Math.round(cpuN / ((performance.now() - t3) / 1000));

  // The backend's own ceiling for the job's I/O: the same MinIO, the same client, the same concurrency, objects of
  // the header's size: fresh PUTs, then GETs, then GET + conditional overwrite pairs (what re-wrapping one header
  // costs), no gateway work in between.
  const headerBytes = (await backend.getBuffer(metaBucket, (await backend.listObjects(metaBucket, { prefix: `h/${bucket}/`, maxKeys: 1 })).objects[0]!.key)).data.length;
  const M = Math.min(N, 5000);
  const scratch = `bscratch-${randomBytes(4).toString('hex')}`;
  await backend.createBucket(scratch);
  const payload = randomBytes(headerBytes);
  const ids = Array.from({ length: M }, (_, i) => `h/${i}`);
  const t4 = performance.now();
  await forEachLimit(ids, CONC, async (k) => backend.putObject(scratch, k, payload, { size: payload.length, meta: {} }).then(() => undefined));
  const putPerS = M / ((performance.now() - t4) / 1000);
  const t5 = performance.now();
  await forEachLimit(ids, CONC, async (k) => backend.getBuffer(scratch, k).then(() => undefined));
  const getPerS = M / ((performance.now() - t5) / 1000);
  const freshEstimate = Math.round(1 / (1 / putPerS + 1 / getPerS));
  // What the job really asks of the backend per header: read an existing object, then overwrite it under
  // If-Match (an overwrite with a condition costs MinIO more than a fresh PUT).
  const t7 = performance.now();
  await forEachLimit(ids, CONC, async (k) => {
    const { data, info } = await backend.getBuffer(scratch, k);
    await backend.putObject(scratch, k, data, { size: data.length, ifMatch: info.etag });
  });
  const pairsPerS = M / ((performance.now() - t7) / 1000);
  // What a design that never reads or writes single headers would still need: listing them (and the data keys,
  // which the header key derivation binds), 1,000 per page. Its ceiling on this backend.
  const listRate = async (b: string, prefix: string, keep?: string[]) => {
    const t = performance.now();
    let n = 0;
    for await (const page of listPages(backend, b, prefix)) {
      n += page.length;
      if (keep) for (const o of page) keep.push(o.key);
    }
    return n / ((performance.now() - t) / 1000);
  };
  const headerKeys: string[] = [];
  const listHeadersPerS = await listRate(metaBucket, `h/${bucket}/`, headerKeys);
  const listDataPerS = await listRate(bucket, '');
  // ... and removing objects in bulk (DeleteObjects, 1,000 keys a request, 4 requests at a time), the only S3
  // call that changes many objects at once: what a design that must retire one old-KEK object per header pays.
  // Measured on the N header objects themselves (the job and its scan are done with them).
  const s3 = makeClient({ endpoint: coords.endpoint!, accessKey: coords.accessKey, secretKey: coords.secretKey });
  let deletePerS: number;
  try {
    const t6 = performance.now();
    const batches = Array.from({ length: Math.ceil(headerKeys.length / 1000) }, (_, i) => headerKeys.slice(i * 1000, (i + 1) * 1000));
    await forEachLimit(batches, 4, async (b) => {
      const r = await s3.send(new DeleteObjectsCommand({ Bucket: metaBucket, Delete: { Objects: b.map((Key) => ({ Key })), Quiet: true } }));
      if (r.Errors?.length) throw new Error(`DeleteObjects: ${r.Errors.length} errors, first ${r.Errors[0]!.Code}`);
    });
    deletePerS = headerKeys.length / ((performance.now() - t6) / 1000);
  } finally {
    s3.destroy();
  }

  const result = {
    headers: N,
    concurrency: CONC,
    cpus: os.cpus().length,
    setupSeconds: +setupS.toFixed(2),
    jobMode: job.mode,
    jobSeconds: +jobS.toFixed(3),
    headerKeysRewrapped: job.headerKeysRewrapped,
    headersRewritten: job.rewrapped,
    failed: job.failed,
    pendingAfter: scan.pending,
    // proof after the job (not in the rate): a scan of every header, then the old version destroyed and every header opened
    verifyScanSeconds: +scanS.toFixed(2),
    oldVersionDestroyed: oldVersion,
    headersOpenedAfterDestroy: opened,
    openAllSeconds: +openS.toFixed(2),
    'rewrap-headers-per-s': Math.round(N / jobS),
    'rewrap-data-bytes-read': job.dataBytesRead,
    // the per-header path (a re-key; once for a dataset from before format 2)
    rekeySeconds: +rekeyS.toFixed(2),
    'rekey-headers-per-s': Math.round(N / rekeyS),
    'rekey-data-bytes-read': rekeyJob.dataBytesRead,
    'rewrap-cpu-only-headers-per-s': cpuPerS,
    backendOpsPerHeader: 2,
    headerBytes,
    'backend-put-per-s': Math.round(putPerS),
    'backend-get-per-s': Math.round(getPerS),
    // the job's own I/O, measured as pairs: the ceiling
    'backend-ceiling-headers-per-s': Math.round(pairsPerS),
    // fresh PUTs and GETs measured apart, combined: an upper bound that ignores the overwrite condition
    'backend-fresh-put-get-estimate-per-s': freshEstimate,
    'backend-list-header-keys-per-s': Math.round(listHeadersPerS),
    'backend-list-data-keys-per-s': Math.round(listDataPerS),
    'backend-ceiling-list-only-headers-per-s': Math.round(1 / (1 / listHeadersPerS + 1 / listDataPerS)),
    'backend-bulk-delete-per-s': Math.round(deletePerS),
    at: new Date().toISOString(),
  };
  console.log(`rewrap-headers-per-s ${result['rewrap-headers-per-s']} (${N} headers, job ${result.jobSeconds} s, mode ${job.mode}: ${job.headerKeysRewrapped} header key(s) re-wrapped, ${job.rewrapped} headers rewritten)`);
  console.log(`verified: scan ${scanS.toFixed(1)} s (${scan.total} headers, ${scan.pending} pending); v${oldVersion} destroyed, ${opened} headers opened in ${openS.toFixed(1)} s`);
  console.log(`rewrap-data-bytes-read ${result['rewrap-data-bytes-read']}`);
  console.log(`rekey-headers-per-s ${result['rekey-headers-per-s']} (every header resealed, ${rekeyS.toFixed(1)} s, data bytes read ${rekeyJob.dataBytesRead})`);
  console.log(`rewrap-cpu-only-headers-per-s ${cpuPerS}`);
  console.log(`backend alone (${M} objects of ${headerBytes} B, concurrency ${CONC}): ${Math.round(putPerS)} PUT/s, ${Math.round(getPerS)} GET/s -> ${freshEstimate}/s at 1 GET + 1 fresh PUT each; GET then If-Match overwrite of the same object (the job's I/O, the ceiling): ${result['backend-ceiling-headers-per-s']}/s`);
  console.log(`listing alone: ${result['backend-list-header-keys-per-s']} header keys/s, ${result['backend-list-data-keys-per-s']} data keys/s -> ${result['backend-ceiling-list-only-headers-per-s']} headers/s for a design that only lists; DeleteObjects ${result['backend-bulk-delete-per-s']} objects/s`);
  console.log(JSON.stringify(result));
  const dir = path.join(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'rewrap.json'), JSON.stringify(result, null, 2) + '\n');
  await keys.stop();
  await backend.close();
  await minio?.stop();
  tmp.cleanup();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
