/**
 * `lakecrypt login | logout | profiles`: named profiles (admin URL + an admin user's credentials), checked with one
 * signed call before they are saved, in a 0600 file (src/cli/profiles.ts says where and in which order the CLI
 * picks an identity). `--profile NAME` selects the profile to write or remove (default "default").
 */
import readline from 'node:readline';
import type { Command } from 'commander';
import { AdminClient, CliError } from './client.ts';
import type { CommandKit } from './common.ts';
import { table } from './format.ts';
import { checkProfileName, DEFAULT_PROFILE, defaultAdminUrl, profilesFile, readProfiles, removeProfile, resolveIdentity, saveProfile } from './profiles.ts';

interface WhoAmI {
  actor: string;
  tenant?: string;
}

/** One line from the terminal; with `hidden`, read in raw mode and never echoed (a secret). */
function ask(question: string, hidden = false): Promise<string> {
  const input = process.stdin;
  // Echo off before the prompt shows: a secret typed (or pasted) at once never reaches the screen.
  if (hidden) input.setRawMode(true);
  process.stderr.write(question);
  if (!hidden) {
    return new Promise((resolve, reject) => {
      const rl = readline.createInterface({ input, terminal: false });
      let answered = false;
      rl.once('line', (l) => {
        answered = true; // before close(), which emits 'close' at once
        resolve(l.trim());
        rl.close();
      });
      rl.once('close', () => {
        if (!answered) reject(new CliError('login: no answer (end of input)', 2, 'UsageError'));
      });
    });
  }
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          return resolve(buf);
        }
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          return reject(new CliError('login cancelled', 1, 'Cancelled'));
        }
        buf = ch === '\u007f' || ch === '\b' ? buf.slice(0, -1) : buf + ch;
      }
    };
    input.setEncoding('utf8');
    input.resume();
    input.on('data', onData);
  });
}

/** The first line of stdin (`--secret-key-stdin`: `pass lakecrypt | lakecrypt login ...`). */
async function firstStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0].trim();
}

export function registerLoginCommands(program: Command, kit: CommandKit, env: NodeJS.ProcessEnv = process.env): void {
  const { g, print, sub } = kit;

  sub(program, 'login', `check an admin user's credentials against a gateway and save them as a profile (--profile NAME, default "${DEFAULT_PROFILE}"), mode 0600`)
    .option('--access-key <key>', 'access key of an admin user (asked when not given)')
    .option('--secret-key <secret>', 'its secret (asked without echo when not given; visible to other local users in the process list if given here)')
    .option('--secret-key-stdin', 'read the secret from the first line of stdin')
    .option('--region <region>', 'the gateway region the requests are signed for (default us-east-1)')
    .addHelpText('after', '\nThe admin API URL is --url (asked when not given on a terminal; default $LAKECRYPT_ADMIN_URL or http://127.0.0.1:9101).')
    .action(async (o: { accessKey?: string; secretKey?: string; secretKeyStdin?: boolean; region?: string }) => {
      const name = checkProfileName(g().profile ?? DEFAULT_PROFILE);
      const tty = !!process.stdin.isTTY && !o.secretKeyStdin;
      if (o.secretKey !== undefined && o.secretKeyStdin) throw new CliError('login: give --secret-key or --secret-key-stdin, not both', 2, 'UsageError');
      const dflt = defaultAdminUrl(env);
      const url = g().url ?? (tty ? (await ask(`admin API URL [${dflt}]: `)) || dflt : dflt);
      const accessKey = o.accessKey ?? (tty ? await ask('access key: ') : undefined);
      if (!accessKey) throw new CliError('login: --access-key is required (no terminal to ask on)', 2, 'UsageError');
      const secretKey = o.secretKey ?? (o.secretKeyStdin ? await firstStdinLine() : tty ? await ask('secret key: ', true) : undefined);
      if (!secretKey) throw new CliError('login: a secret is required: --secret-key-stdin, --secret-key, or run it on a terminal', 2, 'UsageError');
      const region = o.region ?? env.LAKECRYPT_REGION;
      // One signed call: a wrong URL, a wrong secret or a non-admin user is refused here, and nothing is saved.
      const who = await new AdminClient({ url, accessKey, secretKey, region }).get<WhoAmI>('/admin/whoami');
      const file = saveProfile(env, name, { url, accessKey, secretKey, ...(region ? { region } : {}) });
      print({ profile: name, url, accessKey, actor: who.actor, ...(who.tenant ? { tenant: who.tenant } : {}), file }, () =>
        `logged in to ${url} as ${who.actor}${who.tenant ? ` (tenant ${who.tenant})` : ''}: profile "${name}" saved in ${file} (0600)\n`,
      );
    });

  sub(program, 'logout', `remove a saved profile (--profile NAME, default "${DEFAULT_PROFILE}")`).action(() => {
    const name = checkProfileName(g().profile ?? DEFAULT_PROFILE);
    if (!removeProfile(env, name)) throw new CliError(`no profile "${name}" in ${profilesFile(env)}`, 2, 'NoSuchProfile');
    print({ profile: name, removed: true }, () => `profile "${name}" removed from ${profilesFile(env)}\n`);
  });

  sub(program, 'profiles', 'saved profiles (never their secrets) and which identity a command would use now').action(() => {
    const all = readProfiles(env);
    let inEffect: string;
    try {
      const id = resolveIdentity({ profile: g().profile, url: g().url }, env);
      inEffect = `${id.source} -> ${id.url}`;
    } catch (e) {
      inEffect = `none (${(e as Error).message})`;
    }
    const rows = Object.entries(all).map(([name, p]) => ({ name, url: p.url, accessKey: p.accessKey, region: p.region ?? null, savedAt: p.savedAt ?? null }));
    print({ file: profilesFile(env), profiles: rows, inEffect }, () =>
      (rows.length ? table(['PROFILE', 'URL', 'ACCESS-KEY', 'SAVED'], rows.map((r) => [r.name, r.url, r.accessKey, r.savedAt])) : `no profiles in ${profilesFile(env)}\n`) +
        `in effect: ${inEffect}\n`,
    );
  });
}
