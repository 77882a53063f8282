/**
 * Issue #19 item 3: the fleet in CI. A distributed MinIO (4 server processes on loopback, one erasure set) and
 * three gateway processes, each talking to its own MinIO node. Six clients run mixed traffic (PUT of several sizes,
 * GET checked byte for byte, DELETE, LIST, multipart uploads whose parts go through different gateways) while:
 * a KEK rotation with re-wrap, a KEK revocation (and restore) of a second dataset, a `kill -9` of one gateway and
 * its restart, and a MinIO node stopped and restarted. Afterwards every key is read through every gateway and
 * listed: 0 wrong bytes, 0 lost acknowledged writes, 0 listing anomalies; the audit chain verifies.
 *
 * The model of what each key may hold is a set: an acknowledged write replaces it; a write that failed (a
 * gateway killed under it, a 5xx) adds its content as possible without removing the old one. Nothing here asserts
 * how many operations ran or how fast: only which answers are allowed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ServiceException,
} from '@aws-sdk/client-s3';
import { AdminClient } from '../../src/cli/client.ts';
import { launchGateway, newCredentials, type GatewayProcess } from '../../tools/gateway.ts';
import { startMinioCluster, type MinioClusterHandle } from '../../tools/minio.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { pollUntil, sleep } from '../../tools/wait.ts';

const MiB = 1024 * 1024;
const BOUND_MS = 1000;
const TRAFFIC_MS = 45_000;
const WORKERS = 6;
const KEYS_PER_WORKER = 12;
const BUCKET = 'fleet-main';
const SIDE = 'fleet-side';
const root = newCredentials();
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let cluster: MinioClusterHandle;
const gws: (GatewayProcess | null)[] = [null, null, null];
const dataDir = makeTmpDir('lakecrypt-fleet-');
let env: Record<string, string>;

const s3Of = (g: GatewayProcess) =>
  new S3Client({ endpoint: g.url, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: root.accessKey, secretAccessKey: root.secretKey } });
const adminOf = (g: GatewayProcess) => new AdminClient({ url: g.adminUrl, accessKey: root.accessKey, secretKey: root.secretKey });
const codeOf = (e: unknown) => (e as S3ServiceException).name ?? String(e);
const statusOf = (e: unknown) => (e as S3ServiceException).$metadata?.httpStatusCode ?? 0;

async function startGw(i: number): Promise<GatewayProcess> {
  return launchGateway({ env: { ...env, LAKECRYPT_S3_ENDPOINT: cluster.endpoints[i] }, credentials: root, quiet: true, dataDir: dataDir.path, startTimeoutMs: 120_000 });
}

/** Live gateways, for clients to pick from (a killed one leaves the rotation until it is back). */
const live = () => gws.filter((g): g is GatewayProcess => g !== null);
let rr = 0;
const pick = () => {
  const l = live();
  return l[rr++ % l.length];
};

beforeAll(async () => {
  cluster = await startMinioCluster({ nodes: 4 });
  env = {
    LAKECRYPT_BACKEND: 's3',
    LAKECRYPT_S3_ACCESS_KEY: cluster.accessKey,
    LAKECRYPT_S3_SECRET_KEY: cluster.secretKey,
    LAKECRYPT_META_BUCKET: 'fleet-meta',
    LAKECRYPT_EPOCH_POLL_MS: '100',
    LAKECRYPT_REVOCATION_BOUND_MS: String(BOUND_MS),
    LAKECRYPT_BLOCK_SIZE: String(MiB),
  };
  // one at a time: the first creates the meta bucket, audit key and local CMK key file the others share
  for (let i = 0; i < 3; i++) gws[i] = await startGw(i);
  const s3 = s3Of(gws[0]!);
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  await s3.send(new CreateBucketCommand({ Bucket: SIDE }));
  await s3.send(new PutObjectCommand({ Bucket: SIDE, Key: 'side', Body: 'side data' }));
}, 300_000);

afterAll(async () => {
  for (const g of gws) await g?.kill().catch(() => {});
  await cluster?.stop();
  dataDir.cleanup();
});

type State = string; // sha256 of the content, or 'absent'
interface Stats {
  ops: Record<string, number>;
  failed: Record<string, number>;
  wrong: string[];
  anomalies: string[];
}

describe('a fleet: three gateways on a 4-node MinIO', () => {
  it('mixed traffic through rotation, revocation, a gateway kill -9 and a MinIO node outage: 0 wrong bytes, 0 lost writes, 0 listing anomalies', async () => {
    const model = new Map<string, { states: Set<State>; sizes: Map<State, number> }>();
    const st: Stats = { ops: {}, failed: {}, wrong: [], anomalies: [] };
    const count = (op: string, ok: boolean) => ((ok ? st.ops : st.failed)[op] = ((ok ? st.ops : st.failed)[op] ?? 0) + 1);
    const stateOf = (k: string) => model.get(k) ?? { states: new Set<State>(['absent']), sizes: new Map<State, number>() };
    const acknowledge = (k: string, s: State, size = 0) => model.set(k, { states: new Set([s]), sizes: new Map([[s, size]]) });
    const maybe = (k: string, s: State, size = 0) => {
      const m = stateOf(k);
      m.states.add(s);
      m.sizes.set(s, size);
      model.set(k, m);
    };
    const stopAt = performance.now() + TRAFFIC_MS;
    const sizes = [0, 1, 4096, 65_537, 300 * 1024, 2 * MiB + 12345];

    const worker = async (w: number) => {
      let n = 0;
      while (performance.now() < stopAt) {
        n++;
        const key = `w${w}/k${Math.floor(Math.random() * KEYS_PER_WORKER)}`;
        const r = Math.random();
        const g = pick();
        const s3 = s3Of(g);
        try {
          if (r < 0.4) {
            const body = randomBytes(sizes[n % sizes.length]);
            const h = sha(body);
            try {
              await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
              acknowledge(key, h, body.length);
              count('put', true);
            } catch (e) {
              maybe(key, h, body.length);
              count('put', false);
              void e;
            }
          } else if (r < 0.75) {
            const before = new Set(stateOf(key).states);
            try {
              const o = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
              const got = sha(await o.Body!.transformToByteArray());
              // the state may have changed while reading only through this worker's own writes, which are sequential
              if (!before.has(got)) st.wrong.push(`${key} via ${g.url}: got ${got.slice(0, 8)}, allowed ${[...before].map((x) => x.slice(0, 8)).join(',')}`);
              count('get', true);
            } catch (e) {
              if (codeOf(e) === 'NoSuchKey') {
                if (!before.has('absent')) st.wrong.push(`${key} via ${g.url}: NoSuchKey, but an acknowledged write holds it`);
                count('get', true);
              } else count('get', false);
            }
          } else if (r < 0.85) {
            try {
              await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
              acknowledge(key, 'absent');
              count('delete', true);
            } catch {
              maybe(key, 'absent');
              count('delete', false);
            }
          } else if (r < 0.93) {
            await listCheck(s3, `w${w}/`, `via ${g.url}`);
          } else {
            // a multipart upload whose create, parts and complete go through different gateways
            const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(123_457)];
            const whole = Buffer.concat(parts);
            const h = sha(whole);
            try {
              const c = await s3Of(pick()).send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
              const etags: string[] = [];
              for (let i = 0; i < parts.length; i++) {
                const p = await s3Of(pick()).send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: c.UploadId, PartNumber: i + 1, Body: parts[i] }));
                etags.push(p.ETag!);
              }
              maybe(key, h, whole.length); // from here on the complete may land even if its answer is lost
              await s3Of(pick()).send(
                new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: c.UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
              );
              acknowledge(key, h, whole.length);
              count('multipart', true);
            } catch {
              count('multipart', false);
            }
          }
        } catch (e) {
          count('other', false);
          void e;
        }
      }
    };

    const listCheck = async (s3: S3Client, prefix: string, where: string) => {
      const snapshot = new Map([...model].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k, { states: new Set(v.states), sizes: new Map(v.sizes) }]));
      try {
        const listed = new Map<string, number>();
        let token: string | undefined;
        do {
          const o = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token, MaxKeys: 5 }));
          for (const c of o.Contents ?? []) listed.set(c.Key!, c.Size!);
          token = o.NextContinuationToken;
        } while (token);
        const keys = new Set([...snapshot.keys(), ...listed.keys()]);
        for (const k of keys) {
          const m = snapshot.get(k) ?? { states: new Set(['absent']), sizes: new Map<string, number>() };
          const size = listed.get(k);
          if (size === undefined) {
            if (!m.states.has('absent')) st.anomalies.push(`${k} missing from a listing ${where}`);
          } else if (![...m.states].some((s) => s !== 'absent' && m.sizes.get(s) === size)) {
            st.anomalies.push(`${k} listed ${where} with size ${size}, allowed ${[...m.states].map((s) => m.sizes.get(s) ?? s).join(',')}`);
          }
        }
        count('list', true);
      } catch {
        count('list', false);
      }
    };

    const events: string[] = [];
    const note = (s: string) => events.push(`${((performance.now() - (stopAt - TRAFFIC_MS)) / 1000).toFixed(1)}s ${s}`);
    const script = async () => {
      await sleep(4000);
      // 1. rotation with re-wrap, through gateway 0
      const rot = await adminOf(gws[0]!).post<{ version: number }>(AdminClient.path('admin', 'keys', BUCKET, 'rotate'), { rewrap: true });
      note(`rotated ${BUCKET} to v${rot.version}`);
      // 2. a revocation of the side dataset through gateway 1: reads through the others that start after the bound
      //    are refused; then restored
      await sleep(2000);
      await adminOf(gws[1]!).post(AdminClient.path('admin', 'keys', SIDE, 'revoke'), {});
      const returned = performance.now();
      note('revoked side dataset');
      const sideAnswers: string[] = [];
      while (performance.now() - returned < BOUND_MS + 1500) {
        for (const g of [gws[0]!, gws[2]!]) {
          const started = performance.now() - returned;
          const a = await s3Of(g)
            .send(new GetObjectCommand({ Bucket: SIDE, Key: 'side' }))
            .then(() => 'served', codeOf);
          if (started > BOUND_MS) sideAnswers.push(a);
        }
      }
      expect(sideAnswers.length).toBeGreaterThan(0);
      expect(sideAnswers.filter((a) => a === 'served')).toEqual([]);
      await adminOf(gws[1]!).post(AdminClient.path('admin', 'keys', SIDE, 'restore'), {});
      note(`restored side dataset (after the bound: ${sideAnswers.length} reads, all refused: ${[...new Set(sideAnswers)].join(',')})`);
      // 3. a MinIO node (none of the gateways' own) stops; 4. gateway 2 is killed with -9 and started again
      await cluster.nodes[3].kill();
      note('minio node 4 stopped');
      await sleep(3000);
      const killed = gws[2]!;
      gws[2] = null;
      await killed.kill();
      note('gateway 3 killed (-9)');
      const t0 = performance.now();
      gws[2] = await startGw(2);
      note(`gateway 3 back in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      await sleep(8000);
      await cluster.nodes[3].start();
      note('minio node 4 back');
    };
    await Promise.all([...Array.from({ length: WORKERS }, (_, w) => worker(w)), script()]);

    // the re-wrap job finished
    const job = await pollUntil(
      async () => {
        const r = await adminOf(gws[0]!).get<{ job: { state: string } | null }>(AdminClient.path('admin', 'rewrap', BUCKET), { scan: '0' });
        return r.job && r.job.state !== 'running' && r.job;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 're-wrap job done' },
    );
    expect(job.state).toBe('done');

    // final check: every key through every gateway, and a listing through every gateway
    for (const g of live()) {
      const s3 = s3Of(g);
      for (const [k, m] of model) {
        const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: k })).then(
          async (o) => sha(await o.Body!.transformToByteArray()),
          (e: unknown) => (codeOf(e) === 'NoSuchKey' ? 'absent' : `error ${codeOf(e)} ${statusOf(e)}`),
        );
        if (!m.states.has(got)) st.wrong.push(`final ${k} via ${g.url}: ${got.slice(0, 16)} not among ${[...m.states].map((x) => x.slice(0, 8)).join(',')}`);
      }
      for (let w = 0; w < WORKERS; w++) await listCheck(s3, `w${w}/`, `final via ${g.url}`);
      const v = await adminOf(g).get<{ ok: boolean; count: number }>(AdminClient.path('admin', 'audit', 'verify'));
      expect(v.ok).toBe(true);
      expect(v.count).toBeGreaterThan(0);
    }
    // the side dataset is readable again on every gateway
    for (const g of live()) expect(await (await s3Of(g).send(new GetObjectCommand({ Bucket: SIDE, Key: 'side' }))).Body!.transformToString()).toBe('side data');

    console.log(`[fleet] ops ${JSON.stringify(st.ops)} failed ${JSON.stringify(st.failed)}\n[fleet] ${events.join('\n[fleet] ')}`);
    expect(st.wrong).toEqual([]);
    expect(st.anomalies).toEqual([]);
    for (const op of ['put', 'get', 'delete', 'list', 'multipart']) expect(st.ops[op] ?? 0, op).toBeGreaterThan(0);
  }, 600_000);
});
