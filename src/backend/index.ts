import { FsBackend } from './fs.ts';
import { S3Backend } from './s3.ts';
import type { Backend } from './types.ts';

export type BackendConfig =
  | { kind: 'fs'; dataDir: string; enforceMinPartSize?: boolean }
  | {
      kind: 's3';
      endpoint: string;
      accessKey: string;
      secretKey: string;
      region?: string;
      forcePathStyle?: boolean;
      maxAttempts?: number;
      maxSockets?: number;
    };

export function createBackend(cfg: BackendConfig): Backend {
  switch (cfg.kind) {
    case 'fs':
      return new FsBackend(cfg);
    case 's3':
      return new S3Backend(cfg);
    default:
      throw new Error(`unknown backend kind: ${(cfg as { kind: string }).kind}`);
  }
}

export { FsBackend, S3Backend };
export type { Backend } from './types.ts';
