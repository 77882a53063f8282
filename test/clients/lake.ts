/**
 * The Python that runs the lake engines (delta-rs, pyiceberg, s3fs): a venv that scripts/test-deps.sh makes with
 * --system-site-packages, so it sees the machine's boto3, pyarrow and DuckDB but keeps s3fs's own botocore
 * (aiobotocore pins a narrow range) away from the one that boto3 and the pip AWS CLI need.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectClean, run } from './util.ts';
import { scriptPath } from './python.ts';

/** LAKECRYPT_LAKE_PYTHON, else the venv under the test-deps cache (LAKECRYPT_CACHE, default ~/.cache/lakecrypt). */
export function lakePython(): string {
  if (process.env.LAKECRYPT_LAKE_PYTHON) return process.env.LAKECRYPT_LAKE_PYTHON;
  const cache = process.env.LAKECRYPT_CACHE ?? path.join(os.homedir(), '.cache/lakecrypt');
  return path.join(cache, 'py-lake/bin/python');
}

/** The modules the lake scripts import that the venv's Python lacks (all of them without the venv). */
export function lakeMissing(modules = ['deltalake', 'pyiceberg', 'sqlalchemy', 's3fs', 'pyarrow', 'boto3', 'duckdb', 'duckdb_extension_httpfs']): string[] {
  const py = lakePython();
  if (!existsSync(py)) return modules;
  return modules.filter((m) => {
    try {
      execFileSync(py, ['-c', `import ${m}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

/** Run test/clients/py/SCRIPT with the lake Python: exit 0, no complaint on its output, its last line as JSON. */
export async function lakeScript<T = Record<string, unknown>>(
  script: string,
  args: string[],
  env: Record<string, string>,
  opts: { timeoutMs?: number; allow?: RegExp } = {},
): Promise<T> {
  // no __pycache__ beside the scripts (they import lake_common.py) in the work tree
  const r = expectClean(await run(lakePython(), [scriptPath(script), ...args], { env: { ...env, PYTHONDONTWRITEBYTECODE: '1' }, timeoutMs: opts.timeoutMs ?? 300_000 }), {
    allow: opts.allow,
  });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/**
 * The s3a jars for pyspark 4.3 (Hadoop 3.5.0 inside): hadoop-aws of that version, the AWS SDK bundle and the
 * analytics accelerator its POM names, from the local Maven repository where scripts/test-deps.sh puts them
 * (LAKECRYPT_TEST_SPARK=1). LAKECRYPT_SPARK_JARS (comma-separated) overrides.
 */
export function sparkJars(): string {
  if (process.env.LAKECRYPT_SPARK_JARS) return process.env.LAKECRYPT_SPARK_JARS;
  const m2 = path.join(os.homedir(), '.m2/repository');
  return [
    'org/apache/hadoop/hadoop-aws/3.5.0/hadoop-aws-3.5.0.jar',
    'software/amazon/awssdk/bundle/2.35.4/bundle-2.35.4.jar',
    'software/amazon/s3/analyticsaccelerator/analyticsaccelerator-s3/1.3.1/analyticsaccelerator-s3-1.3.1.jar',
  ]
    .map((j) => path.join(m2, j))
    .join(',');
}
