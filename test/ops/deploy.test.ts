import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { SETTINGS_BY_ENV } from '../../src/ops/config.ts';
import { PUMP_SOURCES } from '../../scripts/build-native.mjs';

const ROOT = path.resolve(import.meta.dirname, '../..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const compose = YAML.parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });

/** Dockerfile instructions with line continuations joined, comments dropped. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stages: { name: string; lines: string[] }[] = [];
for (const l of instructions) {
  const m = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(l);
  if (m) stages.push({ name: m[1] ?? '', lines: [] });
  else stages.at(-1)?.lines.push(l);
}
const lastUser = (name: string): string | undefined => {
  // follow `FROM <stage>` chains back for the inherited USER
  const chain: string[] = [];
  let cur: string | undefined = name;
  while (cur) {
    chain.unshift(cur);
    const from = instructions.find((l) => new RegExp(`^FROM\\s+(\\S+)\\s+AS\\s+${cur}$`, 'i').test(l));
    const parent = from?.split(/\s+/)[1];
    cur = stages.some((s) => s.name === parent) ? parent : undefined;
  }
  let user: string | undefined;
  for (const n of chain) for (const l of stages.find((s) => s.name === n)!.lines) if (/^USER\s/i.test(l)) user = l.split(/\s+/)[1];
  return user;
};

describe('Dockerfile', () => {
  it('is multi-stage with a deps stage running npm ci --omit=dev and build tools', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const deps = stages.find((s) => s.name === 'deps')!;
    expect(deps.lines.join('\n')).toMatch(/npm ci --omit=dev/);
    expect(deps.lines.join('\n')).toMatch(/make g\+\+/);
    // the native data plane is compiled where gcc is, from the sources the context holds, and shipped to the runtime
    expect(deps.lines.join('\n')).toMatch(/COPY native\/dataplane\.c[\s\S]*RUN node scripts\/build-native\.mjs/);
    // every source the build compiles (and the header they share) is copied before it runs
    const copied = deps.lines.filter((l) => /^COPY native\//.test(l)).join(' ');
    for (const f of [...PUMP_SOURCES.map((p) => path.relative(ROOT, p)), 'native/pump.h', 'native/heap.cc']) expect(copied).toContain(f);
    expect(stages.find((s) => s.name === 'base')!.lines.join('\n')).toMatch(/COPY --from=deps [^\n]*\/app\/native\/build \.\/native\/build/);
    expect(instructions.filter((l) => /^FROM\s/i.test(l)).every((l) => /node:20|\$\{NODE_IMAGE\}|FROM base/.test(l))).toBe(true);
    expect(dockerfile).toMatch(/ARG NODE_IMAGE=node:20[\w.-]*slim/);
  });

  it('runs as a non-root user in every runnable stage; the default (last) stage is runtime', () => {
    expect(stages.at(-1)!.name).toBe('runtime');
    for (const s of ['runtime', 'softhsm']) {
      const u = lastUser(s);
      expect(u, s).toBeDefined();
      expect(u).not.toMatch(/^(root|0)(:|$)/);
    }
  });

  it('exposes 9100 and 9101, has a HEALTHCHECK on /readyz and runs the compiled build', () => {
    expect(dockerfile).toMatch(/^EXPOSE 9100 9101$/m);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*src\/ops\/healthcheck\.mjs", "\/readyz"/);
    expect(fs.readFileSync(path.join(ROOT, 'src/ops/healthcheck.mjs'), 'utf8')).toContain('/readyz');
    expect(dockerfile).toMatch(/^CMD \["node", ("--[\w=-]+", )*"dist\/src\/main\.js"\]$/m);
  });

  it('softhsm stage installs softhsm2 and uses the token entrypoint', () => {
    const s = stages.find((x) => x.name === 'softhsm')!.lines.join('\n');
    expect(s).toMatch(/apt-get install .*softhsm2/);
    expect(s).toContain('/app/config/docker/softhsm-entrypoint.sh');
    const ep = path.join(ROOT, 'config/docker/softhsm-entrypoint.sh');
    expect(fs.statSync(ep).mode & 0o111).not.toBe(0);
  });

  it('.dockerignore keeps node_modules, data and secrets out of the context', () => {
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'data', '.git', '**/credentials.json']) expect(ignore).toContain(p);
  });
});

describe('docker-compose.yml', () => {
  const svc = compose.services as Record<string, any>;

  it('has minio, lakecrypt and the softhsm-profile variant', () => {
    expect(Object.keys(svc).sort()).toEqual(['lakecrypt', 'lakecrypt-softhsm', 'minio']);
    expect(svc.minio.profiles).toBeUndefined();
    expect(svc.lakecrypt.profiles).toBeUndefined();
    expect(svc['lakecrypt-softhsm'].profiles).toEqual(['softhsm']);
  });

  it('every service has a healthcheck; minio checks /minio/health/ready', () => {
    for (const [name, s] of Object.entries(svc)) expect(s.healthcheck?.test, name).toBeDefined();
    expect(JSON.stringify(svc.minio.healthcheck.test)).toContain('/minio/health/ready');
    expect(JSON.stringify(svc.lakecrypt.healthcheck.test)).toContain('healthcheck.mjs');
  });

  it('gateways wait for a healthy minio and use the s3 backend', () => {
    for (const name of ['lakecrypt', 'lakecrypt-softhsm']) {
      expect(svc[name].depends_on.minio.condition).toBe('service_healthy');
      expect(svc[name].environment.LAKECRYPT_BACKEND).toBe('s3');
      expect(svc[name].environment.LAKECRYPT_S3_ENDPOINT).toBe('http://minio:9000');
    }
    expect(svc.lakecrypt.build.target).toBe('runtime');
    expect(svc['lakecrypt-softhsm'].build.target).toBe('softhsm');
  });

  it('data lives in named volumes', () => {
    const vols = Object.keys(compose.volumes);
    const mounts = (s: any) => (s.volumes as string[]).map((v) => v.split(':'));
    expect(mounts(svc.minio)).toContainEqual(['minio-data', '/data']);
    expect(mounts(svc.lakecrypt)).toContainEqual(['lakecrypt-data', '/data']);
    expect(mounts(svc['lakecrypt-softhsm'])).toContainEqual(['softhsm-tokens', '/var/lib/softhsm/tokens']);
    // named volumes are declared; bind mounts (a path: the mounted config file) are not
    for (const s of Object.values(svc)) for (const [v] of mounts(s)) if (!/^[./]/.test(v)) expect(vols).toContain(v);
  });

  it('the softhsm variant uses a pkcs11 CMK and its own meta bucket and data', () => {
    const env = svc['lakecrypt-softhsm'].environment;
    expect(env.LAKECRYPT_CMK).toBe('pkcs11');
    expect(env.LAKECRYPT_PKCS11_MODULE).toBe('/usr/lib/softhsm/libsofthsm2.so');
    expect(env.LAKECRYPT_META_BUCKET).not.toBe('lakecrypt-meta');
  });

  it('credentials are env placeholders, never literals; every LAKECRYPT_ var is a real setting', () => {
    expect(svc.minio.environment.MINIO_ROOT_PASSWORD).toMatch(/^\$\{MINIO_ROOT_PASSWORD:-change-me-[^}]*\}$/);
    for (const name of ['lakecrypt', 'lakecrypt-softhsm']) {
      const env = svc[name].environment as Record<string, string>;
      expect(env.LAKECRYPT_S3_SECRET_KEY).toMatch(/^\$\{MINIO_ROOT_PASSWORD:-/);
      expect(env.LAKECRYPT_SECRET_KEY).toMatch(/^\$\{LAKECRYPT_SECRET_KEY:-/);
      for (const k of Object.keys(env).filter((k) => k.startsWith('LAKECRYPT_'))) expect(SETTINGS_BY_ENV.has(k), k).toBe(true);
    }
    expect(svc['lakecrypt-softhsm'].environment.LAKECRYPT_PKCS11_PIN).toMatch(/^\$\{LAKECRYPT_PKCS11_PIN:-change-me-/);
  });

  it('ports are published on loopback only', () => {
    for (const s of Object.values(svc)) for (const p of s.ports as string[]) expect(p).toMatch(/^127\.0\.0\.1:/);
  });
});

describe('the compose environment is a valid configuration', () => {
  it('lakecrypt service env (placeholders expanded) passes loadConfig', async () => {
    const { loadConfig } = await import('../../src/ops/config.ts');
    const env = Object.fromEntries(
      Object.entries(compose.services.lakecrypt.environment as Record<string, string>).map(([k, v]) => [
        k,
        String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1'),
      ]),
    );
    const c = loadConfig({ env: { ...env, LAKECRYPT_DATA_DIR: fs.mkdtempSync('/tmp/lc-compose-') }, file: false, persistCredentials: false });
    expect(c.backend).toBe('s3');
    expect(c.s3.endpoint).toBe('http://minio:9000');
  });
});

describe('softhsm entrypoint', () => {
  const has = spawnSync('sh', ['-c', 'command -v softhsm2-util']).status === 0;
  it.skipIf(!has)('initialises the token once, then execs the command', () => {
    const d = fs.mkdtempSync('/tmp/lc-hsm-');
    fs.mkdirSync(path.join(d, 'tokens'));
    fs.writeFileSync(path.join(d, 'conf'), `directories.tokendir = ${d}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const env = { ...process.env, SOFTHSM2_CONF: path.join(d, 'conf'), LAKECRYPT_PKCS11_TOKEN: 'lc-test', LAKECRYPT_PKCS11_PIN: '1234' };
    const ep = path.join(ROOT, 'config/docker/softhsm-entrypoint.sh');
    const a = spawnSync(ep, ['echo', 'started'], { env, encoding: 'utf8' });
    expect(a.status).toBe(0);
    expect(a.stdout).toBe('started\n');
    expect(a.stderr).toContain('initialised SoftHSM token "lc-test"');
    const b = spawnSync(ep, ['echo', 'again'], { env, encoding: 'utf8' });
    expect(b.stdout).toBe('again\n');
    expect(b.stderr).toBe('');
    fs.rmSync(d, { recursive: true, force: true });
  });
});
