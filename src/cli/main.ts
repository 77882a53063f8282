/**
 * `lakecrypt` admin CLI. Talks to the admin API with SigV4-signed requests as an admin user: the identity of
 * `--profile`, LAKECRYPT_ACCESS_KEY/LAKECRYPT_SECRET_KEY, the profile saved by `lakecrypt login`, or the embedded
 * gateway's data/credentials.json, in that order (src/cli/profiles.ts).
 * Readable tables by default, `--json` for scripts. Any failure: one line on stderr (under --json the JSON
 * {"error": {"code", "message"}}, also on stderr), exit 2 for a usage error, 1 for a refused or failed call.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CliError } from './client.ts';
import type * as Api from './api-types.ts';
import { commandKit, durationArg, intArg, numArg, quiet } from './common.ts';
import { formatDuration } from './duration.ts';
import { kv, table } from './format.ts';
import { registerDatasetCommands } from './datasets.ts';
import { registerKmsCommands } from './kms.ts';
import { registerLoginCommands } from './login.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What `gc` leaves alone without --older-than (src/admin/gc.ts's default). */
const GC_DEFAULT_AGE_MS = 60 * 60 * 1000;

export function buildProgram(env: NodeJS.ProcessEnv = process.env): Command {
  const program = quiet(new Command('lakecrypt'));
  program
    .description('lakecrypt key lifecycle administration (talks to the gateway admin API)')
    .option('--json', 'machine-readable JSON output (errors too: {"error": {"code", "message"}} on stderr)')
    .option('--url <url>', 'admin API URL (default: the profile\'s, else $LAKECRYPT_ADMIN_URL or http://127.0.0.1:9101)')
    .option('--profile <name>', 'the saved profile to use (lakecrypt login --profile NAME; default $LAKECRYPT_PROFILE)')
    .addHelpText(
      'after',
      '\nCredentials: --profile, else LAKECRYPT_ACCESS_KEY/LAKECRYPT_SECRET_KEY, else the profile "default" (lakecrypt login),\n' +
        'else the embedded gateway\'s data/credentials.json (LAKECRYPT_DATA_DIR, ./data, or this checkout\'s data/).\n' +
        'Durations take a unit: 500ms, 30s, 15m, 1h, 7d, 2w.',
    );

  const kit = commandKit(program, env);
  const { g, client, print, sub, P } = kit;
  const needYes = (yes: boolean | undefined, what: string, scope?: string) => {
    if (!yes) throw new CliError(`${what} is destructive${scope ? ` (${scope})` : ''}: add --yes to confirm`, 2, 'ConfirmationRequired');
  };

  // ------------------------------------------------------------------ keys
  const keys = sub(program, 'keys', 'dataset KEKs');
  sub(keys, 'list', 'datasets and their KEK versions').action(async () => {
    const r = await client().get<Api.KeysList>(P('admin', 'keys'));
    print(r, () =>
      r.datasets.length
        ? table(
            ['DATASET', 'CMK', 'ACTIVE', 'VERSIONS', 'REVOKED-BLOCKS'],
            r.datasets.map((d) => [d.dataset, d.cmkId, d.activeVersion, d.versions.map((v) => `v${v.version}:${v.state}${v.destroyAt ? `(due ${v.destroyAt})` : ''}`).join(' '), d.revokedBlocks]),
          )
        : 'no datasets yet\n',
    );
  });
  sub(keys, 'show', 'one dataset').argument('<dataset>').action(async (ds: string) => {
    const r = await client().get<Api.DatasetView>(P('admin', 'keys', ds));
    print(r, () =>
      kv({ dataset: r.dataset, datasetId: r.datasetId, cmk: r.cmkId, revokedBlocks: r.revokedBlocks?.length ?? 0 }) +
        '\n' +
        table(
          ['VERSION', 'STATE', 'CREATED', 'CMK-VERSION', 'DESTROY-DUE'],
          r.versions.map((v) => [v.version, v.state, v.createdAt, v.wrapped ? `${v.wrapped.cmkId}/v${v.wrapped.cmkVersion}` : null, v.destroyAt ?? null]),
        ) +
        (r.headerKeys?.length
          ? '\n' + table(['HEADER-KEY', 'GENERATION', 'WRAPPED-UNDER', 'CREATED'], r.headerKeys.map((k) => [k.n, `v${k.generation}`, `v${k.kekVersion}`, k.createdAt]))
          : ''),
    );
  });
  sub(keys, 'create', 'create the first KEK of a dataset').argument('<dataset>').action(async (ds: string) => {
    const r = await client().post<Api.KeyCreated>(P('admin', 'keys', ds, 'create'));
    print(r, () => `${r.created ? 'created' : 'exists'}: ${r.dataset} (active v${r.versions.find((v) => v.state === 'active')?.version ?? '-'})\n`);
  });
  sub(keys, 'rotate', 'new active KEK version (the old one becomes decrypt-only)')
    .argument('<dataset>')
    .option('--rewrap', 'start the re-wrap job right away')
    .action(async (ds: string, o: { rewrap?: boolean }) => {
      const r = await client().post<Api.KeyRotated>(P('admin', 'keys', ds, 'rotate'), { rewrap: !!o.rewrap });
      print(r, () => `rotated ${ds}: active version is now v${r.version}${r.rewrap ? ' (re-wrap started)' : ''}\n`);
    });
  sub(keys, 'revoke', 'revoke one KEK version (or all): its data becomes unreadable until restored')
    .argument('<dataset>')
    .option('--version <n>', 'KEK version (default: every version)', intArg('--version'))
    .option('--yes', 'confirm')
    .action(async (ds: string, o: { version?: number; yes?: boolean }) => {
      needYes(
        o.yes,
        'keys revoke',
        o.version === undefined
          ? `without --version it revokes EVERY version of ${ds}: all of its data becomes unreadable until restored`
          : `version ${o.version} of ${ds}: the data under it becomes unreadable until restored`,
      );
      const r = await client().post<Api.KeysRevoked>(P('admin', 'keys', ds, 'revoke'), { version: o.version });
      print(r, () => `revoked ${ds}: ${r.revoked.length ? r.revoked.map((v) => `v${v}`).join(', ') : 'nothing to revoke'}\n`);
    });
  sub(keys, 'restore', 'undo a revoke')
    .argument('<dataset>')
    .option('--version <n>', 'KEK version (default: every revoked version)', intArg('--version'))
    .action(async (ds: string, o: { version?: number }) => {
      const r = await client().post<Api.KeysRestored>(P('admin', 'keys', ds, 'restore'), { version: o.version });
      print(r, () => `restored ${ds}: ${r.restored.length ? r.restored.map((v) => `v${v}`).join(', ') : 'nothing to restore'}\n`);
    });
  sub(keys, 'destroy', 'schedule the destruction of a KEK version: reads refused at once, destroyed for good when the waiting period is over (refused while headers still reference it)')
    .argument('<dataset>')
    .requiredOption('--version <n>', 'KEK version', intArg('--version'))
    .option('--force', 'destroy even if headers still reference it (their objects become unreadable)')
    .option('--wait-seconds <duration>', 'a longer waiting period than keyDeletionWaitSeconds (never shorter): 30d, 12h, or seconds', durationArg('--wait-seconds', 's', 's'))
    .option('--yes', 'confirm')
    .action(async (ds: string, o: { version: number; yes?: boolean; force?: boolean; waitSeconds?: number }) => {
      needYes(o.yes, 'keys destroy');
      const r = await client().post<Api.DestroyResult>(P('admin', 'keys', ds, 'destroy'), { version: o.version, confirm: true, force: !!o.force, waitSeconds: o.waitSeconds });
      print(
        r,
        () =>
          `${r.alreadyPending ? 'already pending destruction' : 'destruction scheduled'}: ${ds} v${r.version}, due ${r.destroyAt}` +
          `${r.forced && r.referencingHeaders ? ` (forced: ${r.referencingHeaders} header(s) will be lost)` : ''}; reads of its data are refused until then;` +
          ` cancel with: lakecrypt keys cancel-destroy ${ds} --version ${r.version}\n`,
      );
    });
  sub(keys, 'cancel-destroy', 'cancel a pending destruction (the version returns to decrypt-only or revoked)')
    .argument('<dataset>')
    .requiredOption('--version <n>', 'KEK version', intArg('--version'))
    .action(async (ds: string, o: { version: number }) => {
      const r = await client().post<Api.DestroyCancelled>(P('admin', 'keys', ds, 'cancel-destroy'), { version: o.version });
      print(r, () => `destruction cancelled: ${ds} v${r.version} is ${r.state} again (it was due ${r.destroyAt})\n`);
    });

  // ------------------------------------------------------------------ objects
  const objects = sub(program, 'objects', 'object (DEK) level operations');
  sub(objects, 'revoke', 'revoke one block (or the whole object): erases its DEK')
    .argument('<bucket>')
    .argument('<key>')
    .option('--block <n>', 'global 0-based block index (default: every block)', intArg('--block'))
    .option('--yes', 'confirm')
    .action(async (bucket: string, key: string, o: { block?: number; yes?: boolean }) => {
      needYes(o.yes, 'objects revoke');
      const r = await client().post<Api.RevokeResult>(P('admin', 'objects', 'revoke'), { bucket, key, block: o.block });
      print(r, () => `revoked ${r.block === 'all' ? 'every block' : `block ${r.block} (part ${r.part}, block ${r.partBlock})`} of ${bucket}/${key} (oid ${r.oid})\n`);
    });
  sub(objects, 'rekey', 'rewrite an object under new DEKs (new object id)')
    .argument('<bucket>')
    .argument('<key>')
    .action(async (bucket: string, key: string) => {
      const r = await client().post<Api.ObjectRekeyed>(P('admin', 'objects', 'rekey'), { bucket, key });
      print(r, () => `rekeyed ${bucket}/${key}: oid ${r.oldOid} -> ${r.oid}\n`);
    });

  // ------------------------------------------------------------------ rewrap
  const rewrap = sub(program, 'rewrap', 'make headers depend on the active KEK version only (re-wraps header keys)');
  const rewrapStatus = (r: Api.RewrapStatus) =>
    kv({
      dataset: r.dataset,
      running: r.running,
      activeVersion: r.activeVersion,
      headers: r.total,
      pending: r.pending,
      byVersion: r.byVersion,
      job: r.job
        ? `${r.job.state} (${r.job.headerKeysRewrapped ?? 0} header key(s) re-wrapped; ${r.job.mode === 'header-keys' ? 'no header rewritten' : `${r.job.done}/${r.job.total} headers done, ${r.job.rewrapped} resealed, ${r.job.failed} failed`}, ${r.job.dataBytesRead} data bytes read)`
        : 'none',
    });
  sub(rewrap, 'run', 'start (or resume) the re-wrap job')
    .argument('<dataset>')
    .option('--wait', 'wait for the job to finish (progress bar on a TTY)')
    .option('--fresh', 'start over instead of resuming')
    .option('--rekey', 'start a new header key and reseal every header under it (after a suspected key leak)')
    .action(async (ds: string, o: { wait?: boolean; fresh?: boolean; rekey?: boolean }) => {
      const c = client();
      const started = await c.post<Api.RewrapJob>(P('admin', 'rewrap', ds), { fresh: !!o.fresh, rekey: !!o.rekey });
      if (!o.wait) {
        print(started, () => `re-wrap of ${ds} ${started.state} (target v${started.targetVersion})\n`);
        return;
      }
      let bar: { start(t: number, v: number): void; update(v: number): void; setTotal(t: number): void; stop(): void } | undefined;
      if (process.stderr.isTTY && !g().json) {
        const { SingleBar, Presets } = (await import('cli-progress')).default;
        bar = new SingleBar({ stream: process.stderr, format: 'rewrap {bar} {value}/{total} headers' }, Presets.shades_classic);
        bar.start(1, 0);
      }
      for (;;) {
        const s = await c.get<Api.RewrapStatus>(P('admin', 'rewrap', ds), { scan: '0' });
        if (bar && s.job) {
          bar.setTotal(Math.max(1, s.job.total));
          bar.update(s.job.done);
        }
        if (!s.running && s.job?.state !== 'running') break;
        if (!s.running && s.job?.state === 'running') {
          // running on another gateway (or resumed): keep polling a little slower
          await sleep(500);
          continue;
        }
        await sleep(200);
      }
      bar?.stop();
      const r = await c.get<Api.RewrapStatus>(P('admin', 'rewrap', ds));
      print(r, () => rewrapStatus(r));
      if (r.job?.state === 'failed') throw new CliError(`re-wrap of ${ds} failed: ${r.job.errors?.at(-1) ?? 'see status'}`);
    });
  sub(rewrap, 'status', 'job progress and headers still on older versions (pending)')
    .argument('<dataset>')
    .action(async (ds: string) => {
      const r = await client().get<Api.RewrapStatus>(P('admin', 'rewrap', ds));
      print(r, () => rewrapStatus(r));
    });

  // ------------------------------------------------------------------ cmk
  const cmk = sub(program, 'cmk', 'customer master keys');
  sub(cmk, 'status', 'CMKs and their versions').action(async () => {
    const r = await client().get<Api.CmkList>(P('admin', 'cmk'));
    print(r, () =>
      table(
        ['CMK', 'KIND', 'DEFAULT', 'OK', 'DATASETS', 'VERSIONS'],
        r.cmks.map((x) => [x.id, x.kind, x.isDefault ? 'yes' : 'no', x.ok ? 'yes' : `no (${x.error})`, x.datasets, x.versions.map((v) => `v${v.version}:${v.state}${v.destroyAt ? `(due ${v.destroyAt})` : ''}`).join(' ')]),
      ),
    );
  });
  sub(cmk, 'rotate', 'new CMK version; re-wraps every KEK under it, then disables the old versions')
    .option('--cmk <id>', 'CMK id (default: the default CMK)')
    .action(async (o: { cmk?: string }) => {
      const r = await client().post<Api.CmkRotateResult>(P('admin', 'cmk', 'rotate'), { cmk: o.cmk });
      print(r, () => `CMK ${r.cmkId}: new version v${r.newVersion}, ${r.rewrapped} key(s) re-wrapped, ${r.failed.length} failed, disabled ${r.disabled.map((v) => `v${v}`).join(', ') || 'none'}\n`);
    });
  const cmkOps = {
    disable: 'disable one CMK version',
    enable: 'enable one CMK version',
    destroy: 'schedule the destruction of a CMK version (disabled now, destroyed when the waiting period is over; awskms: the KMS schedules it)',
    'cancel-destroy': 'cancel a scheduled CMK destruction (enabled again if it was active)',
  } as const;
  for (const [op, what] of Object.entries(cmkOps)) {
    sub(cmk, op, what)
      .option('--cmk <id>', 'CMK id (default: the default CMK)')
      .requiredOption('--version <n>', 'CMK version', intArg('--version'))
      .option('--wait-seconds <duration>', 'destroy: a longer waiting period than keyDeletionWaitSeconds: 30d, 12h, or seconds', durationArg('--wait-seconds', 's', 's'))
      .option('--yes', 'confirm')
      .action(async (o: { cmk?: string; version: number; yes?: boolean; waitSeconds?: number }) => {
        if (op === 'disable' || op === 'destroy') needYes(o.yes, `cmk ${op}`);
        const r = await client().post<Api.CmkChanged>(P('admin', 'cmk', op), { cmk: o.cmk, version: o.version, confirm: true, waitSeconds: o.waitSeconds });
        const done =
          op === 'destroy'
            ? r.destroyAt
              ? `destruction scheduled, due ${r.destroyAt} (disabled until then; cancel with: lakecrypt cmk cancel-destroy --cmk ${r.cmk} --version ${r.version})`
              : 'deletion scheduled at the KMS, with its own waiting period'
            : op === 'cancel-destroy'
              ? 'destruction cancelled'
              : `${op}d`;
        print(r, () => `CMK ${r.cmk} v${r.version}: ${done}\n`);
      });
  }

  // ------------------------------------------------------------------ audit
  const audit = sub(program, 'audit', 'tamper-evident audit log');
  sub(audit, 'list', 'newest entries')
    .option('--limit <n>', 'entries (default 50)', intArg('--limit'))
    .action(async (o: { limit?: number }) => {
      const r = await client().get<Api.AuditList>(P('admin', 'audit'), { limit: String(o.limit ?? 50) });
      print(r, () => table(['SEQ', 'TIME', 'EVENT', 'ACTOR', 'DETAILS'], r.entries.map((e) => [e.seq, e.ts, e.event, e.actor, JSON.stringify(e.details)])));
    });
  sub(audit, 'verify', 'check the hash chain and MACs (exit 1 when broken)').action(async () => {
    const r = await client().get<Api.AuditVerifyResult>(P('admin', 'audit', 'verify'));
    print(r, () => (r.ok ? `audit log OK (${r.count} entries)\n` : ''));
    if (!r.ok) throw new CliError(`audit log BROKEN at entry ${r.firstBad}: ${r.reason}`, 1);
  });

  // ------------------------------------------------------------------ backup / restore
  sub(program, 'backup', 'export the keystore (KEKs stay wrapped under their CMKs) to a file')
    .argument('<file>')
    .option('--force', 'overwrite an existing file')
    .action(async (file: string, o: { force?: boolean }) => {
      // an older backup may be the only one whose keys some CMK version still opens: never replace it silently
      if (!o.force && existsSync(file)) throw new CliError(`${file} exists: pass --force to overwrite it (or choose another name)`, 2, 'FileExists');
      const r = await client().request('GET', P('admin', 'backup'));
      writeFileSync(file, r.body, { mode: 0o600 });
      const doc = r.json() as Partial<Api.KeystoreExport>;
      const needs = Object.entries(doc.cmkVersions ?? {}).map(([id, vs]) => `${id} v${vs.join(', v')}`).join('; ');
      print({ file, records: doc.records?.length ?? 0, bytes: r.body.length, cmkVersions: doc.cmkVersions ?? {} }, () =>
        `wrote ${file}: ${doc.records?.length ?? 0} dataset record(s); restoring it needs CMK version(s): ${needs || 'none'}\n`,
      );
    });
  sub(program, 'restore', 'import a keystore backup (merges; never resurrects revoked or destroyed keys)')
    .argument('<file>')
    .option('--force', "restore even when the backup's keys are wrapped under CMK versions that are disabled or destroyed now")
    .action(async (file: string, o: { force?: boolean }) => {
      let data: Buffer;
      try {
        data = readFileSync(file);
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
      }
      const r = (await client().request('POST', P('admin', 'restore'), { raw: data, ...(o.force ? { query: { force: 'true' } } : {}) })).json() as Api.Restored;
      print(r, () => `restored: ${r.created} created, ${r.merged} merged, ${r.unchanged} unchanged${r.rewrapped ? `, ${r.rewrapped} KEK version(s) took the backup's usable CMK wrapping` : ''}\n`);
    });

  // ------------------------------------------------------------------ migrate
  sub(program, 'migrate', 'encrypt objects written to the backend without lakecrypt')
    .argument('<bucket>')
    .option('--wait', 'wait until done (progress on a TTY)')
    .option('--rate <n>', 'objects per second (0 = unlimited)', numArg('--rate'))
    .option('--status', 'only show the state')
    .option('--stop', 'stop a running migration (resume with migrate again)')
    .option('--fresh', 'start over instead of resuming')
    .action(async (bucket: string, o: { wait?: boolean; rate?: number; status?: boolean; stop?: boolean; fresh?: boolean }) => {
      const c = client();
      const show = (s: Api.MigrateState) => kv({ bucket: s.bucket, state: s.state, scanned: s.scanned, migrated: s.migrated, alreadyEncrypted: s.alreadyEncrypted, raced: s.raced, failed: s.failed, bytes: s.bytes });
      if (o.status) {
        let s: Api.MigrateState;
        try {
          s = await c.get<Api.MigrateState>(P('admin', 'migrate', bucket));
        } catch (e) {
          // No migration has run for this bucket: a state, not a failure.
          if (!(e instanceof CliError && e.code === 'NoSuchKey')) throw e;
          print({ bucket, state: 'none' }, () => `no migration of ${bucket} yet (none yet): start one with lakecrypt migrate ${bucket}\n`);
          return;
        }
        print(s, () => show(s));
        return;
      }
      let s = await c.post<Api.MigrateState>(P('admin', 'migrate', bucket), o.stop ? { stop: true } : { rate: o.rate, fresh: !!o.fresh });
      if (o.wait && !o.stop) {
        while (s.state === 'running') {
          await sleep(200);
          s = await c.get<Api.MigrateState>(P('admin', 'migrate', bucket));
          if (process.stderr.isTTY && !g().json) process.stderr.write(`\rmigrate ${bucket}: ${s.migrated} migrated, ${s.alreadyEncrypted} already encrypted, ${s.scanned} scanned`);
        }
        if (process.stderr.isTTY && !g().json) process.stderr.write('\n');
      }
      print(s, () => show(s));
      if (s.state === 'failed') throw new CliError(`migration of ${bucket} failed: ${s.errors?.at(-1) ?? 'see status'}`);
    });

  registerDatasetCommands(program, env);
  registerKmsCommands(program, env);
  registerLoginCommands(program, kit, env);

  // ------------------------------------------------------------------ gc
  sub(program, 'gc', `find (and with --apply remove) orphan headers, orphan data and abandoned uploads older than ${formatDuration(GC_DEFAULT_AGE_MS)} (--older-than)`)
    .option('--apply', 'remove what was found (default: dry run)')
    .option('--yes', 'confirm --apply')
    .addOption(new Option('--older-than <duration>', `only items older than this: 30m, 1h, 7d (default ${formatDuration(GC_DEFAULT_AGE_MS)})`).argParser(durationArg('--older-than', 'ms', 'ms')))
    .addOption(new Option('--older-than-ms <n>', 'the same in milliseconds (or with a unit)').argParser(durationArg('--older-than-ms', 'ms', 'ms')).conflicts('olderThan'))
    .action(async (o: { apply?: boolean; yes?: boolean; olderThan?: number; olderThanMs?: number }) => {
      if (o.apply) needYes(o.yes, 'gc --apply');
      const olderThanMs = o.olderThan ?? o.olderThanMs;
      const r = await client().post<Api.GcAnswer>(P('admin', 'gc'), { apply: !!o.apply, olderThanMs });
      print(r, () =>
        kv({
          mode: r.apply ? 'apply' : 'dry run',
          olderThan: formatDuration(olderThanMs ?? GC_DEFAULT_AGE_MS),
          orphanHeaders: r.orphanHeaders?.length ?? 0,
          orphanData: r.orphanData?.length ?? 0,
          abandonedUploads: r.abandonedUploads?.length ?? 0,
          removed: r.removed,
        }),
      );
    });

  return program;
}

/** commander's message as one line: "error: unknown command 'kyes'\n(Did you mean keys?)" -> "unknown command 'kyes' (did you mean keys?)". */
function usageLine(message: string): string {
  return message
    .replace(/^error:\s*/, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => l.replace(/^\(Did you mean (.*)\)$/, '(did you mean $1)'))
    .join(' ');
}

/** One failure, reported once: a line on stderr, or under --json {"error": {"code", "message"}} on stderr. */
function report(json: boolean, code: string, message: string, textLine: string): void {
  const line = message.split('\n')[0];
  process.stderr.write(json ? JSON.stringify({ error: { code, message: line } }) + '\n' : `lakecrypt: ${textLine.split('\n')[0]}\n`);
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  // --json is honoured even when the arguments did not parse (an unknown command, a bad option value).
  const json = () => program.opts<{ json?: boolean }>().json === true || argv.slice(2).includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help' || e.code === 'commander.executeSubCommandAsync') return e.exitCode;
      // An option's parser threw our own error: commander wraps its message.
      const line = usageLine(e.message);
      report(json(), 'UsageError', line, line);
      return 2;
    }
    if (e instanceof CliError) {
      report(json(), e.code, e.detail, e.message);
      return e.exitCode;
    }
    const msg = (e as Error)?.message ?? String(e);
    report(json(), 'Failed', msg, msg);
    return 1;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain || process.env.LAKECRYPT_CLI_RUN === '1') {
  // `lakecrypt audit list | head`: the reader went away; stop quietly as other CLIs do, not with a stack.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  void main().then((code) => {
    process.exitCode = code;
  });
}
