/** Backends the key tests run against: the in-memory one, and the real fs backend when it is available. */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend } from '../../src/backend/types.ts';
import { MemBackend } from './mem-backend.ts';

export interface BackendFactory {
  name: string;
  make(): Promise<Backend>;
}

export async function backendFactories(): Promise<BackendFactory[]> {
  const out: BackendFactory[] = [{ name: 'mem', make: async () => new MemBackend() }];
  try {
    const mod = (await import('../../src/backend/index.ts')) as { createBackend?: (cfg: unknown) => Backend };
    if (typeof mod.createBackend === 'function') {
      out.push({
        name: 'fs',
        make: async () => mod.createBackend!({ kind: 'fs', dataDir: mkdtempSync(path.join(os.tmpdir(), 'lc-keys-fs-')) }),
      });
    }
  } catch {
    // fs backend not landed yet: mem only
  }
  return out;
}
