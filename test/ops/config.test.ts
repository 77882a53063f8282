import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  SETTINGS,
  formatConfigError,
  generateCredentials,
  loadConfig,
  redactConfig,
  unknownEnvVars,
  type Config,
} from '../../src/ops/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lc-ops-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const CREDS = { LAKECRYPT_ACCESS_KEY: 'rootkey', LAKECRYPT_SECRET_KEY: 'rootsecret123' };
const load = (env: Record<string, string> = {}, file: string | false = false): Config =>
  loadConfig({ env: { LAKECRYPT_DATA_DIR: path.join(tmp, 'data'), ...CREDS, ...env }, file, cwd: tmp });
const errOf = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
};
const writeYaml = (text: string) => {
  const p = path.join(tmp, 'lc.yaml');
  fs.writeFileSync(p, text);
  return p;
};

describe('defaults', () => {
  it('applies every documented default', () => {
    const c = load();
    expect(c).toMatchObject({
      port: 9100,
      host: '127.0.0.1',
      adminPort: 9101,
      adminHost: '127.0.0.1',
      region: 'us-east-1',
      backend: 'fs',
      s3: { region: 'us-east-1', forcePathStyle: true },
      metaBucket: 'lakecrypt-meta',
      users: [],
      sigv2: true,
      cmk: 'local',
      pkcs11: {},
      cmks: [],
      datasets: [],
      blockSize: 8388608,
      cryptoThreads: 0,
      keyCacheTtlMs: 60000,
      keyCacheSize: 1024,
      epochPollMs: 250,
      revocationBoundMs: 1000,
      rewrapRatePerSec: 0,
      logLevel: 'info',
      accessLog: true,
      tls: {},
      headersTimeoutMs: 30000,
      idleTimeoutMs: 60000,
      requestTimeoutMs: 0,
      shutdownGraceMs: 10000,
      maxHeaderBytes: 16384,
    });
    expect(c.dataDir).toBe(path.join(tmp, 'data'));
    expect(c.s3.endpoint).toBeUndefined();
    // the KMS endpoint is off unless LAKECRYPT_KMS_PORT is set
    expect(c.kmsPort).toBeUndefined();
    expect(c.meta).toMatchObject({ configFile: null, credentials: 'settings' });
  });

  it('relative dataDir resolves against cwd; ./data by default', () => {
    const c = loadConfig({ env: CREDS, file: false, cwd: tmp });
    expect(c.dataDir).toBe(path.join(tmp, 'data'));
  });

  it('the shipped config/lakecrypt.yaml validates and equals the defaults', () => {
    const withFile = loadConfig({ env: CREDS, file: path.join(ROOT, 'config/lakecrypt.yaml'), cwd: tmp });
    const without = loadConfig({ env: CREDS, file: false, cwd: tmp });
    expect(withFile.meta.configFile).toBe(path.join(ROOT, 'config/lakecrypt.yaml'));
    expect({ ...withFile, meta: null }).toEqual({ ...without, meta: null });
  });

  it('uses config/lakecrypt.yaml in cwd when present, LAKECRYPT_CONFIG otherwise', () => {
    fs.mkdirSync(path.join(tmp, 'config'));
    fs.writeFileSync(path.join(tmp, 'config/lakecrypt.yaml'), 'port: 9200\n');
    expect(loadConfig({ env: CREDS, cwd: tmp }).port).toBe(9200);
    const other = writeYaml('port: 9300\n');
    expect(loadConfig({ env: { ...CREDS, LAKECRYPT_CONFIG: other }, cwd: tmp }).port).toBe(9300);
    expect(loadConfig({ env: { ...CREDS, LAKECRYPT_CONFIG: other }, file: false, cwd: tmp }).port).toBe(9100);
  });
});

describe('file + environment', () => {
  it('reads nested groups and lists from YAML', () => {
    const f = writeYaml(`
port: 9200
backend: s3
s3:
  endpoint: http://minio:9000
  accessKey: minio
  secretKey: minio-secret
  forcePathStyle: false
cmks:
  - id: tenant-a
    kind: local
datasets:
  - name: lake/finance
    cmk: tenant-a
    rotateEveryDays: 30
users:
  - accessKey: analyst
    secretKey: analyst-secret
    buckets: ["lake"]
tls:
`);
    const c = load({}, f);
    expect(c.port).toBe(9200);
    expect(c.s3).toEqual({ endpoint: 'http://minio:9000', accessKey: 'minio', secretKey: 'minio-secret', region: 'us-east-1', forcePathStyle: false });
    expect(c.datasets).toEqual([{ name: 'lake/finance', cmk: 'tenant-a', rotateEveryDays: 30 }]);
    expect(c.users[0]!.buckets).toEqual(['lake']);
  });

  it('environment wins over the file; empty env values count as unset', () => {
    const f = writeYaml('port: 9200\nhost: 0.0.0.0\n');
    const c = load({ LAKECRYPT_PORT: '9300', LAKECRYPT_HOST: '' }, f);
    expect(c.port).toBe(9300);
    expect(c.host).toBe('0.0.0.0');
  });

  const fixtures: Record<string, [string, unknown]> = {
    port: ['9200', 9200],
    host: ['0.0.0.0', '0.0.0.0'],
    adminPort: ['9201', 9201],
    adminHost: ['10.0.0.1', '10.0.0.1'],
    kmsPort: ['9202', 9202],
    dataDir: ['/var/lib/lakecrypt', '/var/lib/lakecrypt'],
    accessKey: ['other-root', 'other-root'],
    secretKey: ['other-secret-1', 'other-secret-1'],
    region: ['eu-west-3', 'eu-west-3'],
    users: ['[{"accessKey":"user1","secretKey":"u1-secret","buckets":["*"],"admin":true}]', [{ accessKey: 'user1', secretKey: 'u1-secret', buckets: ['*'], admin: true }]],
    sigv2: ['false', false],
    backend: ['s3', 's3'],
    's3.endpoint': ['http://minio:9000', 'http://minio:9000'],
    's3.accessKey': ['minio', 'minio'],
    's3.secretKey': ['minio-secret', 'minio-secret'],
    's3.region': ['eu-central-1', 'eu-central-1'],
    's3.forcePathStyle': ['false', false],
    metaBucket: ['my-meta', 'my-meta'],
    cmk: ['local', 'local'],
    'pkcs11.module': ['__MODULE__', '__MODULE__'],
    'pkcs11.token': ['tok', 'tok'],
    'pkcs11.pin': ['1234', '1234'],
    // "kind" is the older name of "provider": accepted, and read back as provider
    cmks: ['[{"id":"t1","kind":"local"}]', [{ id: 't1', provider: 'local' }]],
    'transit.addr': ['https://bao.example:8200', 'https://bao.example:8200'],
    'transit.token': ['s.bao-token-1', 's.bao-token-1'],
    'transit.key': ['lake-key', 'lake-key'],
    'transit.mount': ['kv-transit', 'kv-transit'],
    'kms.keyId': ['alias/lake', 'alias/lake'],
    'kms.region': ['eu-west-1', 'eu-west-1'],
    'kms.endpoint': ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    datasets: ['[{"name":"bk1/p","allowPlaintextRead":true}]', [{ name: 'bk1/p', allowPlaintextRead: true }]],
    tenants: ['[{"name":"acme","buckets":["acme-lake"],"admins":[{"accessKey":"acme-adm","secretKey":"acme-secret"}]}]', [{ name: 'acme', buckets: ['acme-lake'], admins: [{ accessKey: 'acme-adm', secretKey: 'acme-secret' }] }]],
    blockSize: ['1048576', 1048576],
    cryptoThreads: ['4', 4],
    inlineHeaderMax: ['0', 0],
    dataPlane: ['node', 'node'],
    keyCacheTtlMs: ['0', 0],
    keyCacheSize: ['10', 10],
    epochPollMs: ['1000', 1000],
    revocationBoundMs: ['2500', 2500],
    rewrapRatePerSec: ['2.5', 2.5],
    logLevel: ['debug', 'debug'],
    accessLog: ['off', false],
    'tls.cert': ['__CERT__', '__CERT__'],
    'tls.key': ['__KEY__', '__KEY__'],
    headersTimeoutMs: ['5000', 5000],
    idleTimeoutMs: ['1000', 1000],
    requestTimeoutMs: ['600000', 600000],
    shutdownGraceMs: ['0', 0],
    maxHeaderBytes: ['32768', 32768],
    maxConnections: ['100', 100],
    objectCsp: ["default-src 'self'", "default-src 'self'"],
    keyDeletionWaitSeconds: ['60', 60],
  };

  it('has a test fixture for every setting', () => {
    expect(Object.keys(fixtures).sort()).toEqual(Object.keys(SETTINGS).sort());
  });

  for (const [name, [envValue, expected]] of Object.entries(fixtures)) {
    const s = SETTINGS[name as keyof typeof SETTINGS];
    it(`${s.env} overrides ${name}`, () => {
      const files: Record<string, string> = {};
      for (const f of ['__MODULE__', '__CERT__', '__KEY__']) {
        files[f] = path.join(tmp, f.toLowerCase().replace(/_/g, ''));
        fs.writeFileSync(files[f]!, 'x');
      }
      const fix = (v: unknown) => (typeof v === 'string' && files[v] ? files[v] : v);
      const env: Record<string, string> = { [s.env]: String(fix(envValue)) };
      // partners for settings that come in pairs
      if (name === 'tls.cert') env.LAKECRYPT_TLS_KEY = files.__KEY__!;
      if (name === 'tls.key') env.LAKECRYPT_TLS_CERT = files.__CERT__!;
      if (name === 's3.accessKey') env.LAKECRYPT_S3_SECRET_KEY = 'x-secret';
      if (name === 's3.secretKey') env.LAKECRYPT_S3_ACCESS_KEY = 'x';
      const c = load(env) as unknown as Record<string, unknown>;
      const got = name.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);
      expect(got).toEqual(fix(expected));
    });
  }

  it('secrets can come from <VAR>_FILE', () => {
    const p = path.join(tmp, 'secret');
    fs.writeFileSync(p, 'from-a-file-123\n');
    const c = loadConfig({ env: { LAKECRYPT_ACCESS_KEY: 'root', LAKECRYPT_SECRET_KEY_FILE: p }, file: false, cwd: tmp });
    expect(c.secretKey).toBe('from-a-file-123');
    const e = errOf(() => loadConfig({ env: { LAKECRYPT_ACCESS_KEY: 'root', LAKECRYPT_SECRET_KEY_FILE: path.join(tmp, 'nope') }, file: false, cwd: tmp }));
    expect(e.message).toMatch(/^LAKECRYPT_SECRET_KEY_FILE: cannot read/);
  });

  it('pkcs11 settings with a readable module', () => {
    const mod = path.join(tmp, 'libsofthsm2.so');
    fs.writeFileSync(mod, '');
    const c = load({ LAKECRYPT_CMK: 'pkcs11', LAKECRYPT_PKCS11_MODULE: mod, LAKECRYPT_PKCS11_TOKEN: 'lc', LAKECRYPT_PKCS11_PIN: '1234' });
    expect(c.cmk).toBe('pkcs11');
    expect(c.pkcs11).toEqual({ module: mod, token: 'lc', pin: '1234' });
  });
});

describe('errors: one line naming the setting', () => {
  const cases: [Record<string, string>, string | RegExp][] = [
    [{ LAKECRYPT_PORT: 'abc' }, 'LAKECRYPT_PORT: expected an integer 1-65535 (or 0 for any free port), got "abc"'],
    [{ LAKECRYPT_PORT: '70000' }, /^LAKECRYPT_PORT: expected an integer 1-65535.*got "70000"$/],
    [{ LAKECRYPT_PORT: '9.5' }, /^LAKECRYPT_PORT: expected an integer/],
    [{ LAKECRYPT_ADMIN_PORT: '-1' }, /^LAKECRYPT_ADMIN_PORT: expected an integer/],
    [{ LAKECRYPT_BLOCK_SIZE: '100000' }, 'LAKECRYPT_BLOCK_SIZE: expected a multiple of 65536 between 65536 and 8388608 (bytes), got "100000"'],
    [{ LAKECRYPT_BLOCK_SIZE: '16777216' }, /^LAKECRYPT_BLOCK_SIZE: expected a multiple of 65536/],
    [{ LAKECRYPT_CRYPTO_THREADS: '65' }, /^LAKECRYPT_CRYPTO_THREADS: expected an integer 0-64, got "65"$/],
    [{ LAKECRYPT_ACCESS_LOG: 'maybe' }, 'LAKECRYPT_ACCESS_LOG: expected true or false, got "maybe"'],
    [{ LAKECRYPT_BACKEND: 'gcs' }, 'LAKECRYPT_BACKEND: expected "fs" or "s3", got "gcs"'],
    [{ LAKECRYPT_CMK: 'kms' }, 'LAKECRYPT_CMK: expected "local", "pkcs11", "transit" or "awskms", got "kms"'],
    [{ LAKECRYPT_LOG_LEVEL: 'verbose' }, /^LAKECRYPT_LOG_LEVEL: expected one of fatal, error/],
    [{ LAKECRYPT_S3_ENDPOINT: 'minio:9000' }, /^LAKECRYPT_S3_ENDPOINT: expected an http\(s\) URL, got "minio:9000"$/],
    [{ LAKECRYPT_META_BUCKET: 'Bad_Bucket' }, /^LAKECRYPT_META_BUCKET: expected a valid S3 bucket name/],
    [{ LAKECRYPT_REWRAP_RATE: '-3' }, /^LAKECRYPT_REWRAP_RATE: expected a number >= 0/],
    [{ LAKECRYPT_USERS: 'not json' }, /^LAKECRYPT_USERS: expected a JSON array .*got not valid JSON$/],
    [{ LAKECRYPT_USERS: '{"a":1}' }, /^LAKECRYPT_USERS: expected an array of .*got an object$/],
    [{ LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"u1-secret","buckets":[]}]' }, /^LAKECRYPT_USERS\[0\]\.buckets: expected a non-empty array/],
    [{ LAKECRYPT_DATASETS: '[{"name":"lake","cmk":"nope"}]' }, /^LAKECRYPT_DATASETS\[0\]\.cmk: expected a configured CMK id \("default"\), got "nope"$/],
    [{ LAKECRYPT_DATASETS: '[{"name":"lake","colour":"red"}]' }, 'LAKECRYPT_DATASETS[0]: unknown field "colour"'],
    [{ LAKECRYPT_DATASETS: '[{"name":"lakecrypt-meta"}]' }, /^LAKECRYPT_DATASETS\[0\]\.name: the meta bucket/],
    [{ LAKECRYPT_CMKS: '[{"id":"default","kind":"local"}]' }, /^LAKECRYPT_CMKS\[0\]\.id: "default" is the id of the main CMK/],
    [{ LAKECRYPT_CMK: 'pkcs11' }, 'pkcs11.module (LAKECRYPT_PKCS11_MODULE): required when a CMK of kind "pkcs11" is configured'],
    [{ LAKECRYPT_CMK: 'pkcs11', LAKECRYPT_PKCS11_MODULE: '/nonexistent/lib.so' }, /^LAKECRYPT_PKCS11_MODULE: expected the path of a PKCS#11 module.*no such readable file/],
    [{ LAKECRYPT_TLS_CERT: '/nonexistent.pem' }, /^tls\.key \(LAKECRYPT_TLS_KEY\): must be set together with tls\.cert \(LAKECRYPT_TLS_CERT\)$/],
    [{ LAKECRYPT_S3_ACCESS_KEY: 'x' }, /^s3\.secretKey \(LAKECRYPT_S3_SECRET_KEY\): must be set together with s3\.accessKey/],
    [{ LAKECRYPT_ADMIN_PORT: '9100' }, /^LAKECRYPT_ADMIN_PORT: must differ from port/],
    [{ LAKECRYPT_KMS_PORT: '9100' }, /^LAKECRYPT_KMS_PORT: must differ from port \(LAKECRYPT_PORT\), both are 9100$/],
    [{ LAKECRYPT_KMS_PORT: '9101' }, /^LAKECRYPT_KMS_PORT: must differ from adminPort \(LAKECRYPT_ADMIN_PORT\), both are 9101$/],
    [{ LAKECRYPT_KMS_PORT: 'off' }, /^LAKECRYPT_KMS_PORT: expected an integer 1-65535 \(or 0 for any free port\), got "off"$/],
    [{ LAKECRYPT_REQUEST_TIMEOUT_MS: '2000' }, /^headersTimeoutMs \(LAKECRYPT_HEADERS_TIMEOUT_MS\): expected at most requestTimeoutMs/],
    [{ LAKECRYPT_USERS: '[{"accessKey":"rootkey","secretKey":"whatever1","buckets":["*"]}]' }, /^LAKECRYPT_USERS\[0\]\.accessKey: duplicates the root accessKey$/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","cmk":"nope"}]' }, /^LAKECRYPT_TENANTS\[0\]\.cmk: expected a configured CMK id \("default"\), got "nope"$/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a"},{"name":"a"}]' }, /^LAKECRYPT_TENANTS\[1\]\.name: duplicate tenant "a"$/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","buckets":["lakecrypt-meta"]}]' }, /^LAKECRYPT_TENANTS\[0\]\.buckets\[0\]: the meta bucket/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","buckets":["lake"]},{"name":"b","buckets":["lake"]}]' }, /^LAKECRYPT_TENANTS\[1\]\.buckets\[0\]: bucket "lake" already belongs to tenant "a"$/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","buckets":["Bad_B"]}]' }, /^LAKECRYPT_TENANTS\[0\]\.buckets\[0\]: expected a bucket name/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","admins":[{"accessKey":"user1","secretKey":"whatever1"}]}]', LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"u1-secret","buckets":["*"]}]' }, /^LAKECRYPT_TENANTS\[0\]\.admins\[0\]\.accessKey: duplicate accessKey "user1"/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","admins":[{"accessKey":"rootkey","secretKey":"whatever1"}]}]' }, /^LAKECRYPT_TENANTS\[0\]\.admins\[0\]\.accessKey: duplicates the root accessKey$/],
    [{ LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"u1-secret","buckets":["*"],"tenant":"zz"}]' }, /^LAKECRYPT_USERS\[0\]\.tenant: expected a configured tenant/],
    [{ LAKECRYPT_TENANTS: '[{"name":"a","buckets":["lake"]},{"name":"b"}]', LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"u1-secret","buckets":["lake"],"tenant":"b"}]' }, /^LAKECRYPT_USERS\[0\]\.buckets\[0\]: bucket "lake" belongs to tenant "a"/],
  ];
  for (const [env, want] of cases) {
    it(`${JSON.stringify(env)}`, () => {
      const e = errOf(() => load(env));
      expect(e.message).not.toContain('\n');
      if (typeof want === 'string') expect(e.message).toBe(want);
      else expect(e.message).toMatch(want);
      expect(formatConfigError(e)).toBe(e.message);
    });
  }

  it('never echoes a secret value', () => {
    const e = errOf(() => load({ LAKECRYPT_SECRET_KEY: 'short' }));
    expect(e.message).toBe('LAKECRYPT_SECRET_KEY: expected a string of 8-128 non-blank characters, got a hidden value');
    const e2 = errOf(() => load({ LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"tiny","buckets":["a1b"]}]' }));
    expect(e2.message).toMatch(/^LAKECRYPT_USERS\[0\]\.secretKey: .*got a hidden value$/);
    expect(e2.message).not.toContain('tiny');
    const e3 = errOf(() => load({ LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"leaked-secret"' }));
    expect(e3.message).not.toContain('leaked-secret');
  });

  it('names the file and the env var for a value from the file', () => {
    const f = writeYaml('port: nope\n');
    const e = errOf(() => load({}, f));
    expect(e.message).toBe(`port in ${f} (env LAKECRYPT_PORT): expected an integer 1-65535 (or 0 for any free port), got "nope"`);
    const f2 = writeYaml('s3:\n  forcePathStyle: 3\n');
    expect(errOf(() => load({}, f2)).message).toBe(`s3.forcePathStyle in ${f2} (env LAKECRYPT_S3_PATH_STYLE): expected true or false, got 3`);
  });

  it('unknown keys in the file are errors, with a hint', () => {
    const f = writeYaml('prot: 9000\n');
    expect(errOf(() => load({}, f)).message).toBe(`unknown setting "prot" in ${f} (did you mean "port"?)`);
    const f2 = writeYaml('s3:\n  endpont: http://x\n');
    expect(errOf(() => load({}, f2)).message).toBe(`unknown setting "s3.endpont" in ${f2} (did you mean "s3.endpoint"?)`);
  });

  it('bad YAML, a missing file and a non-mapping file are one-line errors', () => {
    const f = writeYaml('port: [1,\n  host: x\n');
    expect(errOf(() => load({}, f)).message).toMatch(new RegExp(`^config file ${f}: invalid YAML`));
    expect(errOf(() => load({}, path.join(tmp, 'missing.yaml'))).message).toMatch(/^LAKECRYPT_CONFIG: cannot read config file .*missing\.yaml \(ENOENT\)$/);
    expect(errOf(() => load({}, writeYaml('- a\n- b\n'))).message).toMatch(/expected a mapping of settings/);
  });

  it('formatConfigError makes any error one line', () => {
    expect(formatConfigError(new Error('boom\n    at x (y.ts:1:1)'))).toBe('configuration: boom');
  });
});

describe('generated root credentials', () => {
  it('are generated once, stored 0600, then reused', () => {
    const env = { LAKECRYPT_DATA_DIR: path.join(tmp, 'd') };
    const a = loadConfig({ env, file: false, cwd: tmp });
    expect(a.meta.credentials).toBe('generated');
    expect(a.accessKey).toMatch(/^LC[A-Z2-7]{18}$/);
    expect(a.secretKey.length).toBe(40);
    const st = fs.statSync(a.meta.credentialsFile);
    expect(st.mode & 0o777).toBe(0o600);
    const b = loadConfig({ env, file: false, cwd: tmp });
    expect(b.meta.credentials).toBe('stored');
    expect([b.accessKey, b.secretKey]).toEqual([a.accessKey, a.secretKey]);
  });

  it('are letters and digits only, so they paste into any command line (mc takes a leading "-" for a flag)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { accessKey, secretKey } = generateCredentials();
      expect(accessKey).toMatch(/^LC[A-Z2-7]{18}$/);
      expect(secretKey).toMatch(/^[A-Za-z0-9]{40}$/);
      seen.add(secretKey);
    }
    expect(seen.size).toBe(2000);
  });

  it('persistCredentials: false does not write', () => {
    const c = loadConfig({ env: { LAKECRYPT_DATA_DIR: path.join(tmp, 'e') }, file: false, cwd: tmp, persistCredentials: false });
    expect(c.meta.credentials).toBe('ephemeral');
    expect(fs.existsSync(path.join(tmp, 'e'))).toBe(false);
  });

  it('a corrupt credentials file is a one-line error', () => {
    fs.mkdirSync(path.join(tmp, 'f'));
    fs.writeFileSync(path.join(tmp, 'f/credentials.json'), '{"accessKey": 1}');
    const e = errOf(() => loadConfig({ env: { LAKECRYPT_DATA_DIR: path.join(tmp, 'f') }, file: false, cwd: tmp }));
    expect(e.message).toMatch(/^credentials file .*credentials\.json: expected/);
  });
});

describe('redactConfig / unknownEnvVars', () => {
  it('replaces every secret by ***', () => {
    const mod = path.join(tmp, 'm.so');
    fs.writeFileSync(mod, '');
    const c = load({
      LAKECRYPT_S3_ACCESS_KEY: 'minio',
      LAKECRYPT_S3_SECRET_KEY: 'minio-secret-value',
      LAKECRYPT_CMK: 'pkcs11',
      LAKECRYPT_PKCS11_MODULE: mod,
      LAKECRYPT_PKCS11_TOKEN: 'tok',
      LAKECRYPT_PKCS11_PIN: 'pin-value-9876',
      LAKECRYPT_USERS: '[{"accessKey":"user1","secretKey":"user-secret-value","buckets":["*"]}]',
      LAKECRYPT_CMKS: '[{"id":"t1","kind":"pkcs11","pin":"cmk-pin-value"},{"id":"t2","provider":"transit","addr":"http://b:8200","token":"bao-token-value","key":"k"}]',
      LAKECRYPT_TRANSIT_TOKEN: 'default-bao-token-value',
      LAKECRYPT_TENANTS: '[{"name":"acme","cmk":"t2","admins":[{"accessKey":"acme-adm","secretKey":"tenant-admin-secret-value"}]}]',
    });
    const r = redactConfig(c);
    const text = JSON.stringify(r);
    expect(r.tenants[0]!.admins![0]).toEqual({ accessKey: 'acme-adm', secretKey: '***' });
    for (const s of ['rootsecret123', 'minio-secret-value', 'pin-value-9876', 'user-secret-value', 'cmk-pin-value', 'bao-token-value', 'tenant-admin-secret-value']) {
      expect(text).not.toContain(s);
    }
    expect(r.secretKey).toBe('***');
    expect(r.s3.secretKey).toBe('***');
    expect(r.pkcs11).toEqual({ module: mod, token: 'tok', pin: '***' });
    expect(r.users[0]).toEqual({ accessKey: 'user1', secretKey: '***', buckets: ['*'] });
    expect(r.accessKey).toBe('rootkey');
    // the original is untouched
    expect(c.secretKey).toBe('rootsecret123');
  });

  it('lists unknown LAKECRYPT_ variables', () => {
    expect(unknownEnvVars({ LAKECRYPT_PROT: '1', LAKECRYPT_PORT: '1', LAKECRYPT_SECRET_KEY_FILE: 'x', PATH: '' })).toEqual(['LAKECRYPT_PROT']);
  });
});

describe('process exit on bad config', () => {
  const run = (env: Record<string, string>) =>
    spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'src/ops/config-cli-check.ts')], {
      cwd: tmp,
      env: { PATH: process.env.PATH ?? '', HOME: tmp, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });

  it('bad value: exit 1, one stderr line, no stack frames', () => {
    const r = run({ LAKECRYPT_PORT: 'abc' });
    expect(r.status).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe('lakecrypt: configuration error: LAKECRYPT_PORT: expected an integer 1-65535 (or 0 for any free port), got "abc"');
    expect(r.stderr).not.toMatch(/\bat /);
    expect(r.stdout).toBe('');
  });

  it('good config: exit 0, redacted JSON, nothing written', () => {
    const r = run({ LAKECRYPT_ACCESS_KEY: 'root', LAKECRYPT_SECRET_KEY: 'very-secret-value' });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.secretKey).toBe('***');
    expect(r.stdout).not.toContain('very-secret-value');
    expect(fs.existsSync(path.join(tmp, 'data'))).toBe(false);
  });
});
