/**
 * Compose and first run (#20 item 7), as far as it can be checked without Docker: the compose files parsed
 * (readiness health check, one PIN variable, the mounted configuration with datasets, the root user from docker
 * secrets) and each piece they rely on run for real — the probe, the settings loader's <VAR>_FILE, the mounted
 * file through the loader, the build the image's CMD runs.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ENTRIES } from '../../scripts/build.mjs';
import { DEFAULT_CONFIG_FILE, loadConfig, SETTINGS, SETTINGS_BY_ENV, unknownEnvVars } from '../../src/ops/config.ts';
import { ROOT } from '../../tools/gateway.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';

type Service = { environment: Record<string, string>; healthcheck: { test: string[] }; volumes: string[]; secrets?: string[] };
const read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8');
const compose = YAML.parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const overlay = YAML.parse(read('docker-compose.secrets.yml')) as { services: Record<string, Service>; secrets: Record<string, { file: string }> };
const gateways = ['lakecrypt', 'lakecrypt-softhsm'];
/** `${NAME:-default}` -> default, as compose expands an unset variable. */
const expand = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v).replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1')]));

let tmp: TmpDir;
beforeAll(() => {
  tmp = makeTmpDir('lakecrypt-compose-');
});
afterAll(() => tmp?.cleanup());

describe('health: ready, not only alive', () => {
  it('every gateway in compose, and the image, probe /readyz', () => {
    for (const name of gateways) expect(compose.services[name]!.healthcheck.test).toEqual(['CMD', 'node', 'src/ops/healthcheck.mjs', '/readyz']);
    expect(read('Dockerfile')).toMatch(/HEALTHCHECK [^\n]*\\\n\s+CMD \["node", "src\/ops\/healthcheck\.mjs", "\/readyz"\]/);
  });

  it('the probe given /readyz fails on a gateway that is alive but not ready, and passes on one that is', async () => {
    // A listener answering as a gateway whose backend is down: /healthz 200, /readyz 503.
    let ready = false;
    const srv = http.createServer((req, res) => {
      res.statusCode = req.url === '/healthz' || (req.url === '/readyz' && ready) ? 200 : 503;
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    // spawned, not spawnSync: the listener above answers from this process's event loop
    const probe = (...args: string[]) =>
      new Promise<number | null>((resolve) => {
        const env = { ...process.env, LAKECRYPT_PORT: String(port), LAKECRYPT_ADMIN_PORT: String(port), LAKECRYPT_TLS_CERT: '' };
        spawn(process.execPath, [path.join(ROOT, 'src/ops/healthcheck.mjs'), ...args], { env, stdio: 'ignore' }).on('exit', (code) => resolve(code));
      });
    try {
      expect(await probe()).toBe(0); // liveness only
      expect(await probe('/readyz')).toBe(1);
      ready = true;
      expect(await probe('/readyz')).toBe(0);
    } finally {
      srv.close();
    }
  });
});

describe('one PIN variable name everywhere', () => {
  it('compose, the entrypoint and the docs name LAKECRYPT_PKCS11_PIN, the pkcs11.pin setting, and nothing else', () => {
    expect(SETTINGS['pkcs11.pin'].env).toBe('LAKECRYPT_PKCS11_PIN');
    const env = compose.services['lakecrypt-softhsm']!.environment;
    expect(env.LAKECRYPT_PKCS11_PIN).toMatch(/^\$\{LAKECRYPT_PKCS11_PIN:-/);
    expect(env.LAKECRYPT_PKCS11_TOKEN).toMatch(/^\$\{LAKECRYPT_PKCS11_TOKEN:-/);
    expect(read('config/docker/softhsm-entrypoint.sh')).toContain('LAKECRYPT_PKCS11_PIN');
    const texts = ['docker-compose.yml', 'docker-compose.secrets.yml', 'Dockerfile', 'README.md', 'docs/CONFIGURATION.md', 'docs/OPERATIONS.md', 'config/docker/softhsm-entrypoint.sh'];
    for (const f of texts) expect(read(f), f).not.toMatch(/SOFTHSM_PIN|SOFTHSM_TOKEN/);
    for (const f of ['docs/CONFIGURATION.md', 'docs/OPERATIONS.md']) expect(read(f), f).toContain('LAKECRYPT_PKCS11_PIN');
  });

  it('every LAKECRYPT_ variable the compose files set is a setting (or a setting\'s _FILE)', () => {
    const all = [...gateways.map((n) => compose.services[n]!.environment), overlay.services.lakecrypt!.environment];
    for (const env of all) {
      for (const k of Object.keys(env).filter((x) => x.startsWith('LAKECRYPT_'))) expect(SETTINGS_BY_ENV.has(k.replace(/_FILE$/, '')), k).toBe(true);
      expect(unknownEnvVars(env)).toEqual([]);
    }
  });
});

describe('a mounted configuration file with datasets', () => {
  it('both gateways mount config/docker/lakecrypt.yaml read-only over the file the image reads by default', () => {
    // the image's WORKDIR + the loader's default path: no LAKECRYPT_CONFIG needed
    const workdir = /^WORKDIR (\S+)$/m.exec(read('Dockerfile'))![1];
    const target = path.posix.join(workdir!, DEFAULT_CONFIG_FILE);
    expect(target).toBe('/app/config/lakecrypt.yaml');
    for (const name of gateways) {
      const s = compose.services[name]!;
      expect(s.environment.LAKECRYPT_CONFIG).toBeUndefined();
      expect(s.volumes).toContain(`./config/docker/lakecrypt.yaml:${target}:ro`);
    }
  });

  it('the file loads with the compose environment over it, and names datasets', () => {
    const env = { ...expand(compose.services.lakecrypt!.environment), LAKECRYPT_DATA_DIR: path.join(tmp.path, 'mounted') };
    const cfg = loadConfig({ file: path.join(ROOT, 'config/docker/lakecrypt.yaml'), env, persistCredentials: false });
    expect(cfg.datasets.length).toBeGreaterThan(0);
    expect(cfg.datasets.map((d) => d.name)).toEqual(['lake', 'lake/finance/']);
    expect(cfg.datasets.every((d) => d.rotateEveryDays !== undefined)).toBe(true);
    // the environment still wins over the file: the backend is compose's MinIO
    expect(cfg.backend).toBe('s3');
    expect(cfg.s3.endpoint).toBe('http://minio:9000');
    expect(cfg.meta.credentials).toBe('ephemeral'); // no root user given: generated (and, persisted, printed once)
  });
});

describe('root credentials from docker secrets (<VAR>_FILE for any setting)', () => {
  it('the secrets overlay blanks the variables and names files under /run/secrets that compose mounts', () => {
    const svc = overlay.services.lakecrypt!;
    expect(svc.environment.LAKECRYPT_ACCESS_KEY).toBe('');
    expect(svc.environment.LAKECRYPT_SECRET_KEY).toBe('');
    for (const [v, secret] of [['LAKECRYPT_ACCESS_KEY_FILE', 'lakecrypt_access_key'], ['LAKECRYPT_SECRET_KEY_FILE', 'lakecrypt_secret_key']]) {
      expect(svc.environment[v]).toBe(`/run/secrets/${secret}`);
      expect(svc.secrets).toContain(secret);
      expect(overlay.secrets[secret]!.file).toBe(`./secrets/${secret}`);
    }
    expect(read('.gitignore').split('\n')).toContain('secrets/');
    expect(read('.dockerignore').split('\n')).toContain('secrets');
  });

  it('with the overlay merged over compose, the loader reads the pair from the secret files: nothing generated', () => {
    const dir = path.join(tmp.path, 'run-secrets');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'lakecrypt_access_key'), 'LCFROMSECRET01');
    fs.writeFileSync(path.join(dir, 'lakecrypt_secret_key'), 'secret-from-a-docker-secret-file\n');
    const merged = { ...compose.services.lakecrypt!.environment, ...overlay.services.lakecrypt!.environment };
    const env = Object.fromEntries(Object.entries(expand(merged)).map(([k, v]) => [k, v.replace('/run/secrets', dir)]));
    const cfg = loadConfig({ env: { ...env, LAKECRYPT_DATA_DIR: path.join(tmp.path, 'secret-data') }, file: false });
    expect(cfg.accessKey).toBe('LCFROMSECRET01');
    expect(cfg.secretKey).toBe('secret-from-a-docker-secret-file');
    expect(cfg.meta.credentials).toBe('settings');
    expect(fs.existsSync(path.join(tmp.path, 'secret-data', 'credentials.json'))).toBe(false);
  });

  it('any setting, not only secrets, reads <VAR>_FILE; a set variable wins over its _FILE; an unreadable file names the _FILE variable', () => {
    const f = (name: string, text: string) => {
      const p = path.join(tmp.path, name);
      fs.writeFileSync(p, text);
      return p;
    };
    const base = { LAKECRYPT_DATA_DIR: path.join(tmp.path, 'any'), LAKECRYPT_ACCESS_KEY: 'LCROOTKEY1', LAKECRYPT_SECRET_KEY: 'root-secret-value' };
    const cfg = loadConfig({
      file: false,
      persistCredentials: false,
      env: { ...base, LAKECRYPT_PORT_FILE: f('port', '9200\n'), LAKECRYPT_REGION_FILE: f('region', 'eu-west-3'), LAKECRYPT_S3_ENDPOINT_FILE: f('endpoint', 'http://minio.internal:9000\n') },
    });
    expect(cfg.port).toBe(9200);
    expect(cfg.region).toBe('eu-west-3');
    expect(cfg.s3.endpoint).toBe('http://minio.internal:9000');
    const both = loadConfig({ file: false, persistCredentials: false, env: { ...base, LAKECRYPT_REGION: 'us-west-2', LAKECRYPT_REGION_FILE: f('region2', 'eu-west-3') } });
    expect(both.region).toBe('us-west-2');
    const blank = loadConfig({ file: false, persistCredentials: false, env: { ...base, LAKECRYPT_REGION: '', LAKECRYPT_REGION_FILE: f('region3', 'ap-south-1') } });
    expect(blank.region).toBe('ap-south-1');
    expect(() => loadConfig({ file: false, persistCredentials: false, env: { ...base, LAKECRYPT_PORT_FILE: path.join(tmp.path, 'nope') } })).toThrow(/^LAKECRYPT_PORT_FILE: cannot read .*nope \(ENOENT\)$/);
    // a bad value from a file is reported under the _FILE variable it came from
    expect(() => loadConfig({ file: false, persistCredentials: false, env: { ...base, LAKECRYPT_PORT_FILE: f('badport', 'ninety') } })).toThrow(/^LAKECRYPT_PORT_FILE: expected/);
    expect(unknownEnvVars({ LAKECRYPT_PORT_FILE: 'x', LAKECRYPT_ACCESS_KEY_FILE: 'x', LAKECRYPT_PROFILE: 'ops', LAKECRYPT_ADMIN_URL: 'x', LAKECRYPT_CONFIG_HOME: 'x', LAKECRYPT_PRT_FILE: 'x' })).toEqual(['LAKECRYPT_PRT_FILE']);
  });
});

describe('the image runs the compiled build', () => {
  const dockerfile = read('Dockerfile').replace(/\\\n/g, ' ');
  const built = Object.values(ENTRIES);

  it('CMD of the runtime and softhsm stages runs a file the build makes, which the build stage makes and the runtime copies', () => {
    const cmds = [...dockerfile.matchAll(/^CMD (\[.*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
    expect(cmds.length).toBeGreaterThanOrEqual(2);
    for (const cmd of cmds) {
      expect(cmd[0]).toBe('node');
      expect(built).toContain(cmd.slice(1).find((a) => !a.startsWith('--'))); // node [flags] <script>
      expect(cmd.join(' ')).not.toMatch(/tsx|\.ts\b/);
    }
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\} AS build$/m);
    expect(dockerfile).toMatch(/^COPY --from=deps \/app\/node_modules \.\/node_modules$/m);
    expect(dockerfile).toMatch(/^RUN node scripts\/build\.mjs$/m);
    expect(dockerfile).toMatch(/^COPY --from=build --chown=root:root \/app\/dist \.\/dist$/m);
    // what the build reads at run time: the worker threads' files, the default configuration, the probe, the CLI
    for (const p of ['workers ./workers', 'config ./config', 'bin ./bin', 'scripts/build.mjs ./scripts/', 'src/ops/healthcheck.mjs ./src/ops/', 'package.json ./']) {
      expect(dockerfile).toContain(`COPY --chown=root:root ${p}`);
    }
    const ignored = read('.dockerignore').split('\n');
    for (const needed of ['src', 'workers', 'config', 'bin', 'scripts']) expect(ignored).not.toContain(needed);
    expect(ignored).toContain('dist'); // the image makes its own build, never a host's
  });

  it('the worker pool resolves its worker file from the built gateway\'s place as from the sources', () => {
    const main = path.join(ROOT, ENTRIES['src/main.ts']!);
    const rel = '../../workers/crypto-worker.mjs';
    expect(read('src/engine/pool.ts')).toContain(`new URL('${rel}', import.meta.url)`);
    expect(fs.existsSync(new URL(rel, `file://${main}`))).toBe(true);
    expect(fs.existsSync(new URL(rel, `file://${path.join(ROOT, 'src/engine/pool.ts')}`))).toBe(true);
  });
});
