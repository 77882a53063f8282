import { FsBackend, type FsBackendOptions } from './fs.ts';
import { S3Backend, type S3BackendOptions } from './s3.ts';
import type { Backend } from './types.ts';

export type BackendConfig = ({ kind: 'fs' } & FsBackendOptions) | ({ kind: 's3' } & S3BackendOptions);

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
