/** Temp dirs removed by cleanup() or at process exit (LAKECRYPT_KEEP_TMP keeps them). */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TmpDir {
  path: string;
  cleanup(): void;
}

const live = new Set<string>();
let hooked = false;

/** A fresh directory under the OS temp dir (or LAKECRYPT_TEST_TMP). Removed by cleanup() or at process exit. */
export function makeTmpDir(prefix = 'lakecrypt-test-'): TmpDir {
  const base = process.env.LAKECRYPT_TEST_TMP ?? os.tmpdir();
  const dir = mkdtempSync(path.join(base, prefix));
  live.add(dir);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      if (process.env.LAKECRYPT_KEEP_TMP) return;
      for (const d of live) rmSync(d, { recursive: true, force: true });
    });
  }
  return {
    path: dir,
    cleanup() {
      live.delete(dir);
      if (!process.env.LAKECRYPT_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
    },
  };
}
