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
export async function lakeScript<T = Record<string, unknown>>(script: string, args: string[], env: Record<string, string>, timeoutMs = 300_000): Promise<T> {
  // no __pycache__ beside the scripts (they import lake_common.py) in the work tree
  const r = expectClean(await run(lakePython(), [scriptPath(script), ...args], { env: { ...env, PYTHONDONTWRITEBYTECODE: '1' }, timeoutMs }));
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}
