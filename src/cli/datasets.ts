/**
 * `lakecrypt datasets create|list|show|delete|adopt <name>`: datasets as run-time objects (admin API
 * /admin/datasets). Registered on the program by `registerDatasetCommands`; the global `--json`, `--url` and
 * `--profile` options and the credentials work as for every other command (src/cli/common.ts).
 */
import { Command, Option } from 'commander';
import { CliError } from './client.ts';
import type { AdoptState } from '../admin/adopt.ts';
import { commandKit, numArg } from './common.ts';
import { kv, table } from './format.ts';

interface DatasetListAnswer {
  datasets: { dataset: string; bucket: string; prefix: string; registered: boolean; configured: boolean; cmkId: string; activeVersion: number | null; hasKeys: boolean }[];
}

/** The job's state as the server keeps it (type-only import: nothing of the server is loaded). */
type AdoptJob = AdoptState;

interface DatasetShowAnswer {
  dataset: string;
  datasetId: string;
  bucket: string;
  prefix: string;
  routed: boolean;
  registered: boolean;
  configured: boolean;
  cmkId: string | null;
  activeVersion: number | null;
  versions: { version: number; state: string }[];
  objects: number | null;
  pending: number | null;
  pendingByParent: Record<string, number> | null;
  adopt: AdoptJob | null;
  created?: boolean;
}

interface AdoptStatusAnswer {
  dataset: string;
  running: boolean;
  job: AdoptJob | null;
  pending: number | null;
  pendingByParent?: Record<string, number>;
  objects?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const jobLine = (j: AdoptJob | null): string =>
  j
    ? `${j.state} (${j.adopted} adopted, ${j.alreadyAdopted} already in, ${j.skipped} skipped, ${j.raced} raced, ${j.failed} failed; ${j.scanned} looked at${j.objectsPerSec !== undefined ? `, ${j.objectsPerSec}/s` : ''})`
    : 'none';

const parentsLine = (pending: number | null, by: Record<string, number> | null | undefined): string =>
  pending === null ? 'not counted' : pending === 0 ? '0' : `${pending} (${Object.entries(by ?? {}).map(([p, n]) => `${n} under ${p}`).join(', ')})`;

/** Add the `datasets` command group to the `lakecrypt` program. */
export function registerDatasetCommands(program: Command, env: NodeJS.ProcessEnv = process.env): void {
  const { g, print, client, P, sub } = commandKit(program, env);

  const datasets = sub(program, 'datasets', 'datasets (a bucket or bucket/prefix with its own keys) at run time');

  sub(datasets, 'list', 'the datasets every gateway routes by (registered, and configured on this gateway)').action(async () => {
    const r = await client().get<DatasetListAnswer>(P('admin', 'datasets'));
    print(r, () =>
      r.datasets.length
        ? table(
            ['DATASET', 'CMK', 'ACTIVE', 'SOURCE'],
            r.datasets.map((d) => [d.dataset, d.cmkId, d.activeVersion === null ? null : `v${d.activeVersion}`, [d.registered ? 'registered' : '', d.configured ? 'config' : ''].filter(Boolean).join('+')]),
          )
        : 'no datasets registered (every bucket is a dataset of its own)\n',
    );
  });

  const showHuman = (r: DatasetShowAnswer) =>
    kv({
      dataset: r.dataset,
      datasetId: r.datasetId,
      routed: r.routed ? `yes (${r.registered ? 'registered' : ''}${r.registered && r.configured ? ', ' : ''}${r.configured ? 'configured' : ''})` : 'no',
      cmk: r.cmkId,
      activeVersion: r.activeVersion,
      versions: r.versions.map((v) => `v${v.version}:${v.state}`).join(' ') || '-',
      ...(r.prefix ? { objects: r.objects, underParent: parentsLine(r.pending, r.pendingByParent) } : {}),
      adopt: jobLine(r.adopt),
    });

  sub(datasets, 'create', 'create a dataset (bucket or bucket/prefix); new writes under it are sealed under its keys within a second')
    .argument('<name>')
    .option('--cmk <id>', 'CMK the dataset is rooted in (default: the configured or default CMK)')
    .action(async (name: string, o: { cmk?: string }) => {
      const r = await client().post<DatasetShowAnswer>(P('admin', 'datasets', name, 'create'), o.cmk ? { cmk: o.cmk } : {});
      print(r, () => `${r.created ? 'created' : 'exists'}: ${r.dataset} (CMK ${r.cmkId}, active v${r.activeVersion ?? '-'})\n`);
    });

  sub(datasets, 'show', 'one dataset; a prefix dataset also counts the objects under it still sealed under a parent')
    .argument('<name>')
    .option('--no-scan', 'do not count objects (answer from the last adopt job)')
    .action(async (name: string, o: { scan?: boolean }) => {
      const r = await client().get<DatasetShowAnswer>(P('admin', 'datasets', name), o.scan === false ? { scan: '0' } : undefined);
      print(r, () => showHuman(r));
    });

  sub(datasets, 'delete', 'delete a dataset no object references (its registry entry and keys)')
    .argument('<name>')
    .option('--yes', 'confirm')
    .action(async (name: string, o: { yes?: boolean }) => {
      if (!o.yes) throw new CliError('datasets delete is destructive: add --yes to confirm', 2, 'ConfirmationRequired');
      const r = await client().post<{ dataset: string; recordDeleted: boolean }>(P('admin', 'datasets', name, 'delete'), { confirm: true });
      print(r, () => `deleted: ${r.dataset}${r.recordDeleted ? ' (keys removed)' : ''}\n`);
    });

  sub(datasets, 'adopt', 're-seal the objects under a prefix dataset that are still sealed under a parent (resumable)')
    .argument('<name>')
    .option('--wait', 'wait for the job to finish (progress on a TTY)')
    .option('--fresh', 'start over instead of resuming')
    .option('--stop', 'stop the running job (adopt again resumes it)')
    .option('--status', 'only show the progress')
    .addOption(new Option('--rate <n>', 'objects per second (0 = unlimited)').argParser(numArg('--rate')))
    .action(async (name: string, o: { wait?: boolean; fresh?: boolean; stop?: boolean; status?: boolean; rate?: number }) => {
      const c = client();
      const statusHuman = (s: AdoptStatusAnswer) =>
        kv({ dataset: s.dataset, running: s.running, underParent: parentsLine(s.pending, s.pendingByParent ?? s.job?.pendingByParent), job: jobLine(s.job) });
      if (o.status) {
        const s = await c.get<AdoptStatusAnswer>(P('admin', 'datasets', name, 'adopt'));
        print(s, () => statusHuman(s));
        return;
      }
      const started = await c.post<AdoptJob>(P('admin', 'datasets', name, 'adopt'), o.stop ? { stop: true } : { fresh: !!o.fresh, rate: o.rate });
      if (!o.wait || o.stop) {
        print(started, () => `adopt ${name}: ${jobLine(started)}\n`);
        return;
      }
      const tty = process.stderr.isTTY && !g().json;
      for (;;) {
        const s = await c.get<AdoptStatusAnswer>(P('admin', 'datasets', name, 'adopt'), { scan: '0' });
        if (tty && s.job) process.stderr.write(`\radopt ${name}: ${s.job.adopted} adopted, ${s.job.alreadyAdopted} already in, ${s.job.scanned} looked at`);
        if (s.job?.state !== 'running') break;
        await sleep(s.running ? 200 : 500);
      }
      if (tty) process.stderr.write('\n');
      const r = await c.get<AdoptStatusAnswer>(P('admin', 'datasets', name, 'adopt'));
      print(r, () => statusHuman(r));
      if (r.job?.state === 'failed') throw new CliError(`adopt of ${name} failed: ${r.job.errors?.at(-1) ?? 'see status'}`);
      if (r.job?.state === 'stopped') throw new CliError(`adopt of ${name} was stopped: run it again to resume`);
    });
}
