/**
 * The admin CLI in an admin's first hour, driven as a user drives it (bin/lakecrypt, the compiled build, child
 * processes) against a gateway process started as on a fresh machine (root user generated into data/):
 * the embedded default found from the data dir, `lakecrypt login` and named profiles (0600), `--json` errors
 * with the API's codes and the usual exit codes, the S3 port given as the admin URL, durations with units,
 * `migrate --status` before any run, and "did you mean" for mistyped verbs.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, CreateMultipartUploadCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchGateway, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';
import { jsonError, LAKECRYPT_BIN, lakecrypt, userEnv, type CliRun } from './cli-helpers.ts';

let tmp: TmpDir;
let gw: GatewayProcess;
/** A data dir with no credentials.json: the embedded default is not found there. */
let emptyData: string;

beforeAll(async () => {
  tmp = makeTmpDir('lakecrypt-cli-');
  emptyData = path.join(tmp.path, 'empty');
  // dataDir named data/ under tmp: `lakecrypt` run in tmp finds ./data/credentials.json
  gw = await launchGateway({ dataDir: path.join(tmp.path, 'data'), generatedCredentials: true, quiet: true });
});

afterAll(async () => {
  await gw?.stop();
  tmp?.cleanup();
});

/** The environment of a user with nothing set up: own HOME and profile dir, no LAKECRYPT_ credentials. */
const fresh = (name: string, extra: Record<string, string | undefined> = {}) =>
  userEnv(path.join(tmp.path, 'home', name), { LAKECRYPT_CONFIG_HOME: path.join(tmp.path, 'cfg', name), LAKECRYPT_DATA_DIR: emptyData, ...extra });

const oneLine = (r: CliRun) => {
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/\n\s+at /);
};

describe('who the CLI is', () => {
  it('with no profile, no variables and no data dir: NoCredentials, usage exit 2, as text and as JSON', async () => {
    const env = fresh('none');
    const t = await lakecrypt(['keys', 'list'], env, { cwd: tmp.path + '/home' });
    expect(t.code).toBe(2);
    oneLine(t);
    expect(t.stderr).toMatch(/^lakecrypt: no credentials: run lakecrypt login/);
    const j = await lakecrypt(['keys', 'list', '--json'], env, { cwd: tmp.path + '/home' });
    expect(j.code).toBe(2);
    expect(j.stdout).toBe('');
    expect(jsonError(j).code).toBe('NoCredentials');
  });

  it('finds the embedded gateway\'s data/credentials.json by itself: from LAKECRYPT_DATA_DIR, or ./data', async () => {
    const byVar = await lakecrypt(['keys', 'list', '--json'], fresh('embedded', { LAKECRYPT_DATA_DIR: gw.dataDir, LAKECRYPT_ADMIN_URL: gw.adminUrl }));
    expect(byVar.code, byVar.stderr).toBe(0);
    expect(JSON.parse(byVar.stdout)).toHaveProperty('datasets');
    const byCwd = await lakecrypt(['keys', 'list'], fresh('embedded', { LAKECRYPT_DATA_DIR: undefined, LAKECRYPT_ADMIN_URL: gw.adminUrl }), { cwd: tmp.path });
    expect(byCwd.code, byCwd.stderr).toBe(0);
    const which = await lakecrypt(['profiles', '--json'], fresh('embedded', { LAKECRYPT_DATA_DIR: undefined, LAKECRYPT_ADMIN_URL: gw.adminUrl }), { cwd: tmp.path });
    expect((JSON.parse(which.stdout) as { inEffect: string }).inEffect).toBe(`${path.join(tmp.path, 'data', 'credentials.json')} -> ${gw.adminUrl}`);
  });

  it('login checks the credentials with one call, saves nothing when refused, else a 0600 profile that every command then uses', async () => {
    const env = fresh('login');
    const cfg = path.join(tmp.path, 'cfg', 'login');
    const file = path.join(cfg, 'profiles.json');
    const refused = await lakecrypt(['login', '--url', gw.adminUrl, '--access-key', gw.accessKey, '--secret-key-stdin', '--json'], env, { input: 'not-the-secret-at-all\n' });
    expect(refused.code).toBe(1);
    expect(jsonError(refused).code).toBe('SignatureDoesNotMatch');
    expect(() => statSync(file)).toThrow();

    const ok = await lakecrypt(['login', '--url', gw.adminUrl, '--access-key', gw.accessKey, '--secret-key-stdin', '--json'], env, { input: `${gw.secretKey}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ profile: 'default', url: gw.adminUrl, accessKey: gw.accessKey, file });
    expect(ok.stdout + ok.stderr).not.toContain(gw.secretKey);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(cfg).mode & 0o777).toBe(0o700);
    expect((JSON.parse(readFileSync(file, 'utf8')) as { profiles: Record<string, { secretKey: string }> }).profiles.default.secretKey).toBe(gw.secretKey);

    // no LAKECRYPT_ variable at all (and no data dir to fall back on): the profile is what answers
    const list = await lakecrypt(['keys', 'list'], env, { cwd: path.join(tmp.path, 'home') });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^(DATASET|no datasets yet)/);
    const created = await lakecrypt(['keys', 'create', 'profiled', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ dataset: 'profiled' });

    // LAKECRYPT_ACCESS_KEY/SECRET_KEY come before the default profile (here: a wrong secret, refused)
    const envWins = await lakecrypt(['keys', 'list', '--json'], { ...env, LAKECRYPT_ADMIN_URL: gw.adminUrl, LAKECRYPT_ACCESS_KEY: gw.accessKey, LAKECRYPT_SECRET_KEY: 'not-the-secret-at-all' });
    expect(jsonError(envWins).code).toBe('SignatureDoesNotMatch');
    // --url overrides the profile's URL
    const urlWins = await lakecrypt(['keys', 'list', '--url', 'http://127.0.0.1:9', '--json'], env);
    expect(jsonError(urlWins).code).toBe('Unreachable');
  });

  it('login on a terminal asks for the URL, the access key and the secret, and never echoes the secret', async () => {
    const env = fresh('tty');
    // script(1) (util-linux, in every Debian) gives the CLI a terminal; answers are typed once each prompt shows
    const child = spawn('script', ['-qec', `${LAKECRYPT_BIN} login`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    const answers: [string, string][] = [['admin API URL [', gw.adminUrl], ['access key: ', gw.accessKey], ['secret key: ', gw.secretKey]];
    child.stdout.on('data', (d: Buffer) => {
      screen += d.toString();
      const next = answers[0];
      if (next && screen.includes(next[0])) {
        answers.shift();
        child.stdin.write(`${next[1]}\r`);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, screen).toBe(0);
    expect(screen).toContain(`admin API URL [http://127.0.0.1:9101]: ${gw.adminUrl}`);
    expect(screen).toContain(`access key: ${gw.accessKey}`);
    expect(screen).toMatch(/profile "default" saved in .*profiles\.json \(0600\)/);
    expect(screen).not.toContain(gw.secretKey);
    expect((await lakecrypt(['keys', 'list'], env)).code).toBe(0);
  });

  it('named profiles: --profile and LAKECRYPT_PROFILE select one, profiles lists them without secrets, logout removes one', async () => {
    const env = fresh('named');
    for (const name of ['ops', 'audit']) {
      const r = await lakecrypt(['login', '--profile', name, '--url', gw.adminUrl, '--access-key', gw.accessKey, '--secret-key-stdin'], env, { input: gw.secretKey });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`profile "${name}" saved in .*profiles\\.json \\(0600\\)`));
    }
    // no "default" profile and no data dir: without --profile there is no identity
    expect(jsonError(await lakecrypt(['keys', 'list', '--json'], env)).code).toBe('NoCredentials');
    expect((await lakecrypt(['--profile', 'ops', 'keys', 'list'], env)).code).toBe(0);
    expect((await lakecrypt(['keys', 'list'], { ...env, LAKECRYPT_PROFILE: 'audit' })).code).toBe(0);
    const missing = await lakecrypt(['keys', 'list', '--profile', 'nope', '--json'], env);
    expect(missing.code).toBe(2);
    expect(jsonError(missing)).toMatchObject({ code: 'NoSuchProfile' });
    expect(jsonError(await lakecrypt(['keys', 'list', '--profile', '../x', '--json'], env)).code).toBe('UsageError');

    const listed = await lakecrypt(['profiles', '--json', '--profile', 'ops'], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).not.toContain(gw.secretKey);
    const doc = JSON.parse(listed.stdout) as { profiles: { name: string; url: string; accessKey: string }[]; inEffect: string };
    expect(doc.profiles.map((p) => p.name).sort()).toEqual(['audit', 'ops']);
    expect(doc.inEffect).toBe(`profile "ops" -> ${gw.adminUrl}`);

    expect((await lakecrypt(['logout', '--profile', 'ops'], env)).code).toBe(0);
    expect(jsonError(await lakecrypt(['--profile', 'ops', 'keys', 'list', '--json'], env)).code).toBe('NoSuchProfile');
    expect((await lakecrypt(['--profile', 'audit', 'keys', 'list'], env)).code).toBe(0);
  });
});

describe('errors: one line, or under --json {"error":{"code","message"}} on stderr, with the API\'s codes and the usual exit codes', () => {
  const asRoot = () => fresh('errors', { LAKECRYPT_ADMIN_URL: gw.adminUrl, LAKECRYPT_ACCESS_KEY: gw.accessKey, LAKECRYPT_SECRET_KEY: gw.secretKey });

  /** The same failure as text and as JSON: same exit code, the text line names the JSON code. */
  async function both(args: string[], env: Record<string, string>): Promise<{ code: number; error: { code: string; message: string }; text: string }> {
    const t = await lakecrypt(args, env);
    const j = await lakecrypt([...args, '--json'], env);
    expect(t.code).toBe(j.code);
    expect(t.stdout).toBe('');
    expect(j.stdout).toBe('');
    oneLine(t);
    const error = jsonError(j);
    expect(t.stderr).toContain(error.message);
    return { code: j.code, error, text: t.stderr.trim() };
  }

  it('a wrong secret', async () => {
    const r = await both(['keys', 'list'], { ...asRoot(), LAKECRYPT_SECRET_KEY: 'not-the-secret-at-all' });
    expect(r.code).toBe(1);
    expect(r.error.code).toBe('SignatureDoesNotMatch');
    expect(r.text).toMatch(/^lakecrypt: SignatureDoesNotMatch: /);
  });

  it('an unknown dataset', async () => {
    const r = await both(['keys', 'show', 'no-such-dataset'], asRoot());
    expect(r.code).toBe(1);
    expect(r.error.code).toBe('NoSuchKey');
    expect(r.error.message).toContain('no-such-dataset');
    expect(r.text).toBe(`lakecrypt: NoSuchKey: ${r.error.message}`);
  });

  it('the S3 port given as the admin URL: "this is the S3 port, the admin API is on port N"', async () => {
    const r = await both(['keys', 'list', '--url', gw.url], asRoot());
    expect(r.code).toBe(1);
    expect(r.error.code).toBe('WrongPort');
    expect(r.error.message).toBe(`${gw.url}: this is the S3 port, the admin API is on port ${gw.adminPort} (--url http://127.0.0.1:${gw.adminPort})`);
    // with a wrong secret too (the S3 port refuses the signature in XML): still the port, not the secret
    const w = await both(['keys', 'list', '--url', gw.url], { ...asRoot(), LAKECRYPT_SECRET_KEY: 'not-the-secret-at-all' });
    expect(w.error.code).toBe('WrongPort');
    // and login refuses it before saving anything
    const login = await lakecrypt(['login', '--url', gw.url, '--access-key', gw.accessKey, '--secret-key-stdin', '--json'], fresh('s3port'), { input: gw.secretKey });
    expect(jsonError(login).code).toBe('WrongPort');
  });

  it('nothing listening, a bad option value, a missing --yes', async () => {
    expect((await both(['keys', 'list', '--url', 'http://127.0.0.1:9'], asRoot())).error.code).toBe('Unreachable');
    const bad = await both(['keys', 'destroy', 'x', '--version', 'abc', '--yes'], asRoot());
    expect(bad).toMatchObject({ code: 2, error: { code: 'UsageError' } });
    const yes = await both(['keys', 'revoke', 'x'], asRoot());
    expect(yes).toMatchObject({ code: 2, error: { code: 'ConfirmationRequired' } });
  });

  it('"did you mean" for a mistyped verb or option', async () => {
    const verb = await both(['kyes', 'list'], asRoot());
    expect(verb.code).toBe(2);
    expect(verb.error).toEqual({ code: 'UsageError', message: "unknown command 'kyes' (did you mean keys?)" });
    expect(verb.text).toBe("lakecrypt: unknown command 'kyes' (did you mean keys?)");
    expect((await both(['keys', 'lsit'], asRoot())).error.message).toBe("unknown command 'lsit' (did you mean list?)");
    expect((await both(['datasets', 'creat', 'x'], asRoot())).error.message).toMatch(/did you mean create\?/);
    expect((await both(['gc', '--older-then', '1h'], asRoot())).error.message).toMatch(/unknown option '--older-then' \(did you mean --older-than\?\)/);
  });
});

describe('friendly answers', () => {
  const asRoot = () => fresh('friendly', { LAKECRYPT_ADMIN_URL: gw.adminUrl, LAKECRYPT_ACCESS_KEY: gw.accessKey, LAKECRYPT_SECRET_KEY: gw.secretKey });

  it('migrate --status before any run: none yet, exit 0', async () => {
    const t = await lakecrypt(['migrate', 'never-migrated', '--status'], asRoot());
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/none yet/);
    const j = await lakecrypt(['migrate', 'never-migrated', '--status', '--json'], asRoot());
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({ bucket: 'never-migrated', state: 'none' });
  });

  it('gc takes durations with units (and --older-than-ms still works), and says its 1 h default', async () => {
    const s3 = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: gw.accessKey, secretAccessKey: gw.secretKey } });
    await s3.send(new CreateBucketCommand({ Bucket: 'gc-units' }));
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'gc-units', Key: 'abandoned' }));
    s3.destroy();
    const found = async (...args: string[]) => {
      const r = await lakecrypt(['gc', ...args, '--json'], asRoot());
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { abandonedUploads: string[] }).abandonedUploads.some((u) => u.includes(UploadId!));
    };
    // just started: older than 0 s it is, older than a day (or the 1 h default) it is not
    expect(await found('--older-than', '0s')).toBe(true);
    expect(await found('--older-than', '1d')).toBe(false);
    expect(await found('--older-than-ms', '0')).toBe(true);
    expect(await found('--older-than-ms', '1d')).toBe(false);
    expect(await found()).toBe(false);
    const text = await lakecrypt(['gc', '--older-than', '36h'], asRoot());
    expect(text.stdout).toMatch(/^olderThan:\s+1d12h$/m);
    expect((await lakecrypt(['gc'], asRoot())).stdout).toMatch(/^olderThan:\s+1h$/m);
    const help = await lakecrypt(['gc', '--help'], asRoot());
    expect(help.stdout).toMatch(/older than 1h/);
    expect(help.stdout).toMatch(/--older-than <duration>.*\(default 1h\)/);
    const soon = await lakecrypt(['gc', '--older-than', 'soon', '--json'], asRoot());
    expect(soon.code).toBe(2);
    expect(jsonError(soon)).toEqual({ code: 'UsageError', message: '--older-than: expected a duration such as 500ms, 30s, 15m, 1h, 7d, 2w (or a number of milliseconds), got "soon"' });
  });

  it('keys destroy takes its waiting period with a unit', async () => {
    const env = asRoot();
    expect((await lakecrypt(['keys', 'create', 'waits'], env)).code).toBe(0);
    expect((await lakecrypt(['keys', 'rotate', 'waits'], env)).code).toBe(0);
    const before = Date.now();
    const r = await lakecrypt(['keys', 'destroy', 'waits', '--version', '1', '--wait-seconds', '8d', '--yes', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const due = Date.parse((JSON.parse(r.stdout) as { destroyAt: string }).destroyAt);
    expect(due - before).toBeGreaterThanOrEqual(8 * 86_400_000 - 1000);
    expect(due - Date.now()).toBeLessThanOrEqual(8 * 86_400_000 + 1000);
  });
});
