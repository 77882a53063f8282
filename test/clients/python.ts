/** The real Python interpreter (not a pyenv shim, which needs the user's HOME) and the modules it has. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

let cached: string | null | undefined;

export function pythonExe(): string {
  if (cached === undefined) {
    cached = null;
    for (const cand of [process.env.PYTHON, 'python3'].filter(Boolean) as string[]) {
      try {
        cached = execFileSync(cand, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
        break;
      } catch {
        /* next */
      }
    }
  }
  if (!cached) throw new Error('python3 not found: run `bash scripts/test-deps.sh`');
  return cached;
}

export function pythonHas(modules: string[]): string[] {
  const missing: string[] = [];
  for (const m of modules) {
    try {
      execFileSync(pythonExe(), ['-c', `import ${m}`], { stdio: 'ignore' });
    } catch {
      missing.push(m);
    }
  }
  return missing;
}

export const scriptPath = (name: string) => path.join(import.meta.dirname, 'py', name);
