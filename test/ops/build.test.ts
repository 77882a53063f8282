/**
 * The compiled build (scripts/build.mjs): made when missing or older than its inputs, once when many processes
 * ask at the same time, remade by the CLI wrapper after a source change; the gateway from the build serves with
 * its crypto worker threads (which it finds relative to its own file); launchGateway runs the build by default.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTRIES } from '../../scripts/build.mjs';
import { GATEWAY_NODE_FLAGS, launchGateway, ROOT } from '../../tools/gateway.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';

let tmp: TmpDir;
beforeAll(() => {
  tmp = makeTmpDir('lakecrypt-build-');
});
afterAll(() => tmp?.cleanup());

interface Run {
  code: number;
  stderr: string;
  stdout: string;
}
const run = (bin: string, args: string[], cwd: string): Promise<Run> =>
  new Promise((resolve) => {
    execFile(bin, args, { cwd, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 180_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });

/** A checkout of its own (sources, the build script, the CLI wrapper; node_modules linked), so that its sources can change. */
function checkout(name: string): string {
  const dir = path.join(tmp.path, name);
  mkdirSync(dir, { recursive: true });
  for (const p of ['src', 'workers', 'bin', 'scripts/build.mjs', 'package.json', 'package-lock.json']) cpSync(path.join(ROOT, p), path.join(dir, p), { recursive: true });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}
const stamp = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'dist/build.json'), 'utf8')) as { startedAt: number; inputs: string[] };
const built = (r: Run) => (r.stderr.match(/^\[build\] dist\//gm) ?? []).length;

describe('scripts/build.mjs', () => {
  it('builds when missing, not when fresh, again after a source change: once however many ask at the same time', async () => {
    const dir = checkout('stale');
    const build = (...args: string[]) => run(process.execPath, ['scripts/build.mjs', ...args], dir);
    const first = await build('--if-stale');
    expect(first.code, first.stderr).toBe(0);
    expect(built(first)).toBe(1);
    for (const out of Object.values(ENTRIES)) expect(statSync(path.join(dir, out)).size).toBeGreaterThan(10_000);
    const s1 = stamp(dir);
    expect(s1.inputs).toContain('src/main.ts');
    expect(s1.inputs).toContain('workers/crypto-core.mjs');
    expect(s1.inputs.some((i) => i.startsWith('node_modules/'))).toBe(false);

    const fresh = await build('--if-stale');
    expect(fresh).toMatchObject({ code: 0, stderr: '' });
    expect(stamp(dir).startedAt).toBe(s1.startedAt);

    appendFileSync(path.join(dir, 'src/cli/format.ts'), '\n// changed\n');
    const racers = await Promise.all([1, 2, 3, 4].map(() => build('--if-stale')));
    for (const r of racers) expect(r.code, r.stderr).toBe(0);
    expect(racers.reduce((n, r) => n + built(r), 0)).toBe(1);
    expect(stamp(dir).startedAt).toBeGreaterThan(s1.startedAt);
    expect(existsSync(path.join(dir, 'dist/.build.lock'))).toBe(false);

    rmSync(path.join(dir, ENTRIES['src/cli/main.ts']!));
    expect(built(await build('--if-stale'))).toBe(1);
  });

  it('a build error names the file and exits 1, and leaves the last good build in place', async () => {
    const dir = checkout('broken');
    expect((await run(process.execPath, ['scripts/build.mjs'], dir)).code).toBe(0);
    const before = readFileSync(path.join(dir, ENTRIES['src/main.ts']!));
    appendFileSync(path.join(dir, 'src/errors.ts'), '\nexport const = ;\n');
    const r = await run(process.execPath, ['scripts/build.mjs', '--if-stale'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^\[build\] failed: [\s\S]*src\/errors\.ts:\d+:\d+: ERROR/m);
    expect(readFileSync(path.join(dir, ENTRIES['src/main.ts']!)).equals(before)).toBe(true);
  });

  it('the CLI wrapper remakes a stale build before it runs, from any directory', async () => {
    const dir = checkout('wrapper');
    const help = await run(path.join(dir, 'bin/lakecrypt'), ['--help'], tmp.path);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^Usage: lakecrypt /);
    const s1 = stamp(dir).startedAt;
    // a new command description in the sources shows up at the next run
    const main = path.join(dir, 'src/cli/main.ts');
    const text = readFileSync(main, 'utf8').replace("'dataset KEKs'", "'dataset KEKs, freshly built'");
    expect(text).toContain('freshly built');
    writeFileSync(main, text);
    const again = await run(path.join(dir, 'bin/lakecrypt.mjs'), ['--help'], tmp.path);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('freshly built');
    expect(stamp(dir).startedAt).toBeGreaterThan(s1);
  });

  it('package.json: npm run build, npm start from the build, and a lakecrypt bin for npm link / npx', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.scripts.build).toBe('node scripts/build.mjs');
    expect(pkg.scripts.start).toBe(`node scripts/build.mjs --if-stale && node ${GATEWAY_NODE_FLAGS.join(' ')} ${ENTRIES['src/main.ts']}`);
    for (const f of [pkg.bin.lakecrypt!, 'bin/lakecrypt']) {
      const p = path.join(ROOT, f);
      expect(statSync(p).mode & 0o111, f).not.toBe(0);
      expect(readFileSync(p, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    }
    expect(readFileSync(path.join(ROOT, 'scripts/start.sh'), 'utf8')).toMatch(/^node scripts\/build\.mjs --if-stale\n(#.*\n)*exec node (--[\w=-]+ )*dist\/src\/main\.js "\$@"$/m);
    expect(readFileSync(path.join(ROOT, 'scripts/start.sh'), 'utf8')).toContain(`exec node ${GATEWAY_NODE_FLAGS.join(' ')} dist/src/main.js "$@"`);
  });
});

describe('the gateway from the build', () => {
  it('runs dist/src/main.js and serves through its crypto worker threads (cryptoThreads 2, a 6 MiB object)', async () => {
    const gw = await launchGateway({ quiet: true, env: { LAKECRYPT_CRYPTO_THREADS: '2' } });
    const s3 = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey } });
    try {
      expect(readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8').split('\0')).toContain(path.join(ROOT, ENTRIES['src/main.ts']!));
      const threads = () => Number(/^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))![1]);
      const before = threads();
      const body = randomBytes(6 << 20); // above POOL_MIN_BYTES (4 MiB): sealed and opened by the pool
      await s3.send(new CreateBucketCommand({ Bucket: 'pooled' }));
      await s3.send(new PutObjectCommand({ Bucket: 'pooled', Key: 'six', Body: body }));
      const got = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'pooled', Key: 'six' }))).Body!.transformToByteArray());
      expect(got.equals(body)).toBe(true);
      // the pool's two worker threads were started (from workers/crypto-worker.mjs, found beside dist/)
      expect(threads()).toBeGreaterThanOrEqual(before + 2);
    } finally {
      s3.destroy();
      await gw.stop();
    }
  });

  it('fromSource still runs src/main.ts through tsx', async () => {
    const gw = await launchGateway({ quiet: true, fromSource: true });
    try {
      const argv = readFileSync(`/proc/${gw.pid}/cmdline`, 'utf8').split('\0');
      expect(argv).toContain('tsx');
      expect(argv).toContain('src/main.ts');
      expect((await fetch(`${gw.adminUrl}/healthz`)).status).toBe(200);
    } finally {
      await gw.stop();
    }
  });
});
