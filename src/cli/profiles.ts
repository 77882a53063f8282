/**
 * Who the CLI is and which gateway it talks to, like `aws configure` / `mc alias` / `vault login`:
 *
 *   1. `--profile NAME` (or LAKECRYPT_PROFILE): that profile, saved by `lakecrypt login --profile NAME`
 *   2. LAKECRYPT_ACCESS_KEY + LAKECRYPT_SECRET_KEY in the environment (URL: --url, LAKECRYPT_ADMIN_URL)
 *   3. the profile "default" (`lakecrypt login`)
 *   4. the embedded gateway's own root user: <data dir>/credentials.json, as the first `scripts/start.sh` wrote it
 *      (LAKECRYPT_DATA_DIR, else ./data, else the data/ of this lakecrypt checkout)
 *
 * Profiles live in one JSON file, mode 0600 in a 0700 directory: $LAKECRYPT_CONFIG_HOME, else
 * $XDG_CONFIG_HOME/lakecrypt, else ~/.config/lakecrypt. A profile is a URL with its credentials; `--url` overrides
 * the URL of any of them.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError } from './client.ts';

export interface Profile {
  url: string;
  accessKey: string;
  secretKey: string;
  region?: string;
  savedAt?: string;
}

export interface Identity {
  url: string;
  accessKey: string;
  secretKey: string;
  region?: string;
  /** Where the credentials came from, for messages: `profile "ops"`, `environment`, `/srv/lc/data/credentials.json`. */
  source: string;
}

type Env = NodeJS.ProcessEnv;

export const DEFAULT_PROFILE = 'default';
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function configHome(env: Env): string {
  if (env.LAKECRYPT_CONFIG_HOME) return path.resolve(env.LAKECRYPT_CONFIG_HOME);
  if (env.XDG_CONFIG_HOME) return path.join(path.resolve(env.XDG_CONFIG_HOME), 'lakecrypt');
  return path.join(os.homedir(), '.config', 'lakecrypt');
}

export function profilesFile(env: Env): string {
  return path.join(configHome(env), 'profiles.json');
}

export function checkProfileName(name: string): string {
  if (!PROFILE_NAME.test(name)) throw new CliError(`--profile: expected letters, digits, '.', '_' or '-' (up to 64), got "${name}"`, 2, 'UsageError');
  return name;
}

/** The admin URL when none is given: LAKECRYPT_ADMIN_URL, else loopback on LAKECRYPT_ADMIN_PORT (9101). */
export function defaultAdminUrl(env: Env): string {
  return env.LAKECRYPT_ADMIN_URL || `http://127.0.0.1:${env.LAKECRYPT_ADMIN_PORT || 9101}`;
}

/** Every saved profile ({} when there is no file yet). A file others may read is used, with a warning on stderr. */
export function readProfiles(env: Env): Record<string, Profile> {
  const file = profilesFile(env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, 1, 'ProfileUnreadable');
  }
  let doc: { profiles?: Record<string, Profile> };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw new CliError(`${file} is not valid JSON: fix it, or delete it and run lakecrypt login again`, 1, 'ProfileUnreadable');
  }
  if ((statSync(file).mode & 0o077) !== 0) process.stderr.write(`lakecrypt: warning: ${file} is readable by others (it holds secrets): chmod 600 it\n`);
  return doc.profiles ?? {};
}

function writeProfiles(env: Env, profiles: Record<string, Profile>): string {
  const file = profilesFile(env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written whole under another name, then renamed: never a half-written file, never a moment at a wider mode.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ profiles }, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

export function saveProfile(env: Env, name: string, p: Profile): string {
  const all = readProfiles(env);
  all[name] = { ...p, savedAt: new Date().toISOString() };
  return writeProfiles(env, all);
}

export function removeProfile(env: Env, name: string): boolean {
  const all = readProfiles(env);
  if (!(name in all)) return false;
  delete all[name];
  writeProfiles(env, all);
  return true;
}

/** The directory of this lakecrypt checkout or install (holding its package.json), from where this module runs. */
function installRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'lakecrypt') return dir;
    } catch {
      /* not here: one level up */
    }
    dir = path.dirname(dir);
  }
  return undefined;
}

/** The data directories whose credentials.json may hold the embedded gateway's root user, in order. */
export function dataDirCandidates(env: Env, cwd: string): string[] {
  if (env.LAKECRYPT_DATA_DIR) return [path.resolve(cwd, env.LAKECRYPT_DATA_DIR)];
  const root = installRoot();
  return [...new Set([path.join(cwd, 'data'), ...(root ? [path.join(root, 'data')] : [])])];
}

function embeddedDefault(env: Env, cwd: string): { id?: Identity; tried: string[] } {
  const tried: string[] = [];
  for (const dir of dataDirCandidates(env, cwd)) {
    const file = path.join(dir, 'credentials.json');
    if (!existsSync(file)) {
      tried.push(file);
      continue;
    }
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as { accessKey?: unknown; secretKey?: unknown };
      if (typeof c.accessKey === 'string' && typeof c.secretKey === 'string') {
        return { id: { url: defaultAdminUrl(env), accessKey: c.accessKey, secretKey: c.secretKey, region: env.LAKECRYPT_REGION, source: file }, tried };
      }
      tried.push(`${file} (not {accessKey, secretKey})`);
    } catch (e) {
      tried.push(`${file} (${(e as NodeJS.ErrnoException).code ?? 'invalid JSON'})`);
    }
  }
  return { tried };
}

/** Who and where, by the order in this module's comment. */
export function resolveIdentity(o: { profile?: string; url?: string }, env: Env, cwd = process.cwd()): Identity {
  const named = o.profile ?? (env.LAKECRYPT_PROFILE || undefined);
  if (named !== undefined) {
    const p = readProfiles(env)[checkProfileName(named)];
    if (!p) throw new CliError(`no profile "${named}" in ${profilesFile(env)}: run lakecrypt login --profile ${named}`, 2, 'NoSuchProfile');
    return { ...p, url: o.url ?? p.url, region: env.LAKECRYPT_REGION ?? p.region, source: `profile "${named}"` };
  }
  const ak = env.LAKECRYPT_ACCESS_KEY;
  const sk = env.LAKECRYPT_SECRET_KEY;
  if (ak || sk) {
    if (!ak || !sk) throw new CliError('LAKECRYPT_ACCESS_KEY and LAKECRYPT_SECRET_KEY must be set together (an admin user)', 2, 'NoCredentials');
    return { url: o.url ?? defaultAdminUrl(env), accessKey: ak, secretKey: sk, region: env.LAKECRYPT_REGION, source: 'environment' };
  }
  const dflt = readProfiles(env)[DEFAULT_PROFILE];
  if (dflt) return { ...dflt, url: o.url ?? dflt.url, region: env.LAKECRYPT_REGION ?? dflt.region, source: `profile "${DEFAULT_PROFILE}"` };
  const embedded = embeddedDefault(env, cwd);
  if (embedded.id) return { ...embedded.id, url: o.url ?? embedded.id.url };
  throw new CliError(
    `no credentials: run lakecrypt login (or set LAKECRYPT_ACCESS_KEY and LAKECRYPT_SECRET_KEY); no profile in ${profilesFile(env)}, no ${embedded.tried.join(', ')}`,
    2,
    'NoCredentials',
  );
}
