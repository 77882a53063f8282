/**
 * What any gateway in lakecrypt's place can reach on this machine for one large PUT or GET stream: the same
 * client, the same 256 MiB object, through
 *   minio            direct (plain MinIO, which is also everyone else's backend);
 *   minio_sse        direct, MinIO with its own SSE-S3 (the second reference of the targets);
 *   tcp-relay        a process that only pipes sockets to MinIO (bench/lib/relay.ts tcp): the cost of a second
 *                    hop, nothing more;
 *   tcp-relay-aes    the same plus one AES-256-GCM pass on node:crypto over every byte (a fresh cipher per 64 KiB,
 *                    as the engine): the floor of any process that must encrypt or decrypt in between;
 *   null-gateway     node:http server + the gateway's own backend client, no auth, no crypto (relay.ts http);
 *   null-gateway-aes the same plus the AES pass: a Node gateway with nothing but the crypto;
 *   tcp-native       a TCP relay whose bytes move in native code (bench/lib/native-relay.ts, native/dataplane.c:
 *                    one thread per direction reading and writing the sockets' fds), -aes with the same AES pass;
 *   native           node:http for the heads, the body between the two sockets' fds in native code (issue #22's
 *                    design b), -aes with the AES pass in that thread: the floor of a gateway built that way;
 *   native-seal      the same writing and reading lakecrypt's data format (sealed on PUT, opened and verified on GET;
 *                    DEKs in the relay's memory, no header object), into a bucket of its own;
 *   lakecrypt        the gateway.
 * Rounds interleaved with the first target rotated; per transfer MiB/s, the middle process's CPU and the whole
 * machine's CPU per MiB (from /proc); dirty page cache is written out (sync, untimed) before each transfer. Reports medians over rounds and each target's ratio to minio and minio_sse.
 *
 *   node --import tsx bench/floor.ts [--rounds 7] [--mib 256] [--out FILE] [--ways a,b,c] [--relays tcp,tcp-aes,...] [--other DIR]
 *     -> bench/results/floor.json
 * --ways: which of the ways above run (default: all; minio is always started, as everyone's backend). --relays: the
 * bench/lib/relay.ts modes to offer as ways (default tcp,tcp-aes,http,http-aes, reported under the names above;
 * any other mode relay.ts knows is reported under its own name). Rounds: a multiple of the number of ways, so
 * every way starts a round equally often. --other DIR: an A/B of native/dataplane.c — every native way chosen runs
 * twice, as `<way>` from this checkout and as `<way>@other` from DIR's (a worktree of another commit with
 * node_modules linked, e.g. `git worktree add /tmp/old <rev> && ln -s $PWD/node_modules /tmp/old/node_modules`),
 * interleaved in the same rounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3';
import { bodyStream, getDrain, makeClient, MiB, putStream, type Endpoint } from './lib/s3.ts';
import { median } from './lib/stats.ts';
import { cpuSecondsOf, machineBusySeconds, startGatewayProcess, startMiddleProcess, startPlainMinio, startRelay, startSseMinio } from './lib/targets.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    mib: { type: 'string', default: '256' },
    out: { type: 'string' },
    ways: { type: 'string' },
    relays: { type: 'string', default: 'tcp,tcp-aes,http,http-aes' },
    other: { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const SIZE = Number(args.mib) * MiB;
const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);

// a SIGTERM (the smoke test's time-out) still runs the exit hooks that kill MinIO, the relays and the gateway
process.once('SIGTERM', () => process.exit(143));

interface Way {
  name: string;
  client: S3Client;
  bucket: string;
  /** The process in the middle, whose CPU is counted (none for direct). */
  pid?: number;
  stop?: () => Promise<void> | void;
}
/** A way that can be chosen with --ways: how to start it, given plain MinIO (everyone's backend). */
interface WaySpec { name: string; start: (be: Endpoint) => Promise<Way> }

/** relay.ts modes under the names this report has always used. */
const RELAY_NAMES: Record<string, string> = { tcp: 'tcp-relay', 'tcp-aes': 'tcp-relay-aes', http: 'null-gateway', 'http-aes': 'null-gateway-aes' };

/** bench/lib/native-relay.ts modes by way name: a TCP relay and a null gateway whose bodies move in native/dataplane.c. */
const NATIVE: Record<string, string> = { 'tcp-native': 'tcp-native', 'tcp-native-aes': 'tcp-native-aes', native: 'http-native', 'native-aes': 'http-native-aes', 'native-seal': 'http-native-seal' };

/** A middle process that speaks S3 to the client and passes to plain MinIO's bucket `floor`. */
async function middleWay(name: string, started: Promise<{ endpoint: string; child: { pid?: number; kill(): boolean } }>, be: Endpoint): Promise<Way> {
  const r = await started;
  return { name, client: makeClient({ ...be, endpoint: r.endpoint }), bucket: 'floor', pid: r.child.pid, stop: () => void r.child.kill() };
}

const specs: WaySpec[] = [
  { name: 'minio', start: (be) => Promise.resolve({ name: 'minio', client: makeClient(be), bucket: 'floor' }) },
  {
    name: 'minio_sse',
    async start() {
      const sse = await startSseMinio();
      const client = makeClient({ endpoint: sse.endpoint, accessKey: sse.accessKey, secretKey: sse.secretKey });
      await client.send(new CreateBucketCommand({ Bucket: 'floor' }));
      await client.send(new PutBucketEncryptionCommand({
        Bucket: 'floor',
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      }));
      return { name: 'minio_sse', client, bucket: 'floor', stop: () => sse.stop() };
    },
  },
  ...list(args.relays).map((mode): WaySpec => {
    const name = RELAY_NAMES[mode] ?? mode;
    return { name, start: (be) => middleWay(name, startRelay(mode, be), be) };
  }),
  // issue #22 design (b): the body between the two sockets' fds in native code (bench/lib/native-relay.ts)
  ...Object.entries(NATIVE).map(([name, mode]): WaySpec => ({
    name,
    async start(be) {
      const w = await middleWay(name, startMiddleProcess('bench/lib/native-relay.ts', mode, be), be);
      if (mode !== 'http-native-seal') return w;
      // sealed objects in a bucket of their own: the other ways' plain objects are not this one's to open
      await makeClient(be).send(new CreateBucketCommand({ Bucket: 'floorseal' }));
      return { ...w, bucket: 'floorseal' };
    },
  })),
  // --other: the same native ways from another checkout (its own native-relay.ts and addon), for an A/B of the pump
  ...(args.other ? Object.entries(NATIVE).map(([name, mode]): WaySpec => ({
    name: `${name}@other`,
    async start(be) {
      const other = (await import(pathToFileURL(path.resolve(args.other!, 'bench/lib/targets.ts')).href)) as { startMiddleProcess: typeof startMiddleProcess };
      const w = await middleWay(`${name}@other`, other.startMiddleProcess('bench/lib/native-relay.ts', mode, be), be);
      if (mode !== 'http-native-seal') return w;
      await makeClient(be).send(new CreateBucketCommand({ Bucket: 'floorsealother' }));
      return { ...w, bucket: 'floorsealother' };
    },
  })) : []),
  {
    name: 'lakecrypt',
    async start(be) {
      const gw = await startGatewayProcess(be);
      const client = makeClient(gw);
      await client.send(new CreateBucketCommand({ Bucket: 'floorgw' }));
      return { name: 'lakecrypt', client, bucket: 'floorgw', pid: gw.pid, stop: () => gw.stop() };
    },
  },
];
const chosen = args.ways ? list(args.ways) : specs.map((s) => s.name).filter((n) => !n.endsWith('@other'));
// --other doubles every native way chosen
if (args.other) chosen.push(...chosen.filter((n) => n in NATIVE).map((n) => `${n}@other`));
const unknown = chosen.filter((n) => !specs.some((s) => s.name === n));
if (unknown.length) {
  console.error(`floor: unknown way(s) ${unknown.join(', ')}; ways: ${specs.map((s) => s.name).join(', ')} (other relay.ts modes: --relays)`);
  process.exit(2);
}

const minio = await startPlainMinio();
const be: Endpoint = { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey };
await makeClient(be).send(new CreateBucketCommand({ Bucket: 'floor' }));
// started one after the other in the table's order, whatever order --ways named them in
const ways: Way[] = [];
for (const s of specs) if (chosen.includes(s.name)) ways.push(await s.start(be));

async function sha256Of(body: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of body) h.update(chunk as Buffer);
  return h.digest('hex');
}

type Op = 'put' | 'get';
interface Sample { mibps: number[]; middleCpuMsPerMib: number[]; machineCpuMsPerMib: number[] }
const samples: Record<Op, Record<string, Sample>> = { put: {}, get: {} };
for (const op of ['put', 'get'] as const) for (const w of ways) samples[op][w.name] = { mibps: [], middleCpuMsPerMib: [], machineCpuMsPerMib: [] };

async function measure(op: Op, w: Way): Promise<void> {
  execFileSync('sync'); // untimed: no way pays for the disk writes an earlier PUT left in the page cache
  const cpu0 = w.pid ? cpuSecondsOf(w.pid) : 0;
  const busy0 = machineBusySeconds();
  const t = performance.now();
  if (op === 'put') await putStream(w.client, w.bucket, 'o', SIZE);
  else {
    const n = await getDrain(w.client, w.bucket, 'o');
    if (n !== SIZE) throw new Error(`${w.name}: GET returned ${n} bytes, not ${SIZE}`);
  }
  const s = (performance.now() - t) / 1000;
  const mib = SIZE / MiB;
  const sample = samples[op][w.name];
  sample.mibps.push(mib / s);
  if (w.pid) sample.middleCpuMsPerMib.push(((cpuSecondsOf(w.pid) - cpu0) * 1000) / mib);
  sample.machineCpuMsPerMib.push(((machineBusySeconds() - busy0) * 1000) / mib);
}

// every way's object, written through that way (the relays share plain MinIO's object), then read back whole
// and compared, untimed: every way must move the object's exact bytes
const expected = await sha256Of(bodyStream(SIZE));
for (const w of ways) {
  await measure('put', w);
  const o = await w.client.send(new GetObjectCommand({ Bucket: w.bucket, Key: 'o' }));
  const got = await sha256Of(o.Body as Readable);
  if (got !== expected) throw new Error(`${w.name}: the object read back differs from the one written`);
}
for (const w of ways) samples.put[w.name] = { mibps: [], middleCpuMsPerMib: [], machineCpuMsPerMib: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const op of ['put', 'get'] as const) {
    for (let k = 0; k < ways.length; k++) await measure(op, ways[(round + k) % ways.length]);
  }
  console.error(`[floor] round ${round + 1}/${ROUNDS} done`);
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const r1 = (x: number) => Math.round(x * 10) / 10;
const result = Object.fromEntries(
  (['put', 'get'] as const).map((op) => {
    const med = Object.fromEntries(ways.map((w) => [w.name, median(samples[op][w.name].mibps)]));
    return [op, Object.fromEntries(ways.map((w) => {
      const s = samples[op][w.name];
      return [w.name, {
        mibps: r1(med[w.name]),
        vsMinio: med.minio === undefined ? null : r2(med[w.name] / med.minio),
        vsMinioSse: med.minio_sse === undefined ? null : r2(med[w.name] / med.minio_sse),
        middleCpuMsPerMib: w.pid ? r2(median(s.middleCpuMsPerMib)) : null,
        machineCpuMsPerMib: r2(median(s.machineCpuMsPerMib)),
      }];
    }))];
  }),
);
for (const op of ['put', 'get'] as const) {
  for (const [name, r] of Object.entries(result[op])) {
    console.log(`${op} ${name.padEnd(17)} ${String(r.mibps).padStart(6)} MiB/s  ${r.vsMinio?.toFixed(2) ?? '-'}x minio  ${r.vsMinioSse?.toFixed(2) ?? '-'}x sse  middle ${r.middleCpuMsPerMib ?? '-'} CPU-ms/MiB  machine ${r.machineCpuMsPerMib}`);
  }
}
const out = path.resolve(args.out ?? path.join(import.meta.dirname, 'results', 'floor.json'));
mkdirSync(path.dirname(out), { recursive: true });
// every transfer's figures too (samples), for the spread behind each median
writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), objectBytes: SIZE, rounds: ROUNDS, result, samples }, null, 2) + '\n');

for (const w of ways) await w.stop?.();
await minio.stop();
process.exit(0);
