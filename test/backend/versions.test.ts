import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createBackend } from '../../src/backend/index.ts';
import { newSeq } from '../../src/backend/fs-versions.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { minioCoords } from '../helpers/s3.ts';
import { versionsContract } from './contract.ts';

versionsContract('s3 (MinIO)', () => {
  const m = minioCoords();
  return Promise.resolve({ backend: createBackend({ kind: 's3', endpoint: m.endpoint, accessKey: m.accessKey, secretKey: m.secretKey, region: m.region }) });
});

versionsContract('fs', () => {
  const tmp = makeTmpDir('lakecrypt-fs-versions-');
  return Promise.resolve({ backend: createBackend({ kind: 'fs', dataDir: tmp.path }), cleanup: () => tmp.cleanup() });
});

describe('fs backend versions: the states a crash between two steps leaves', () => {
  it('a current file already linked aside is listed once; one under a newer marker is put right by the next write, nothing lost', async () => {
    const tmp = makeTmpDir('lakecrypt-fs-versions-crash-');
    const b = createBackend({ kind: 'fs', dataDir: tmp.path });
    try {
      await b.createBucket('crash');
      await b.putBucketVersioning!('crash', 'Enabled');
      const v1 = await b.putObject('crash', 'k', Buffer.from('one'), { size: 3 });
      const v2 = await b.putObject('crash', 'k', Buffer.from('two'), { size: 3 });
      const current = path.join(tmp.path, 'objects', 'crash', '6b.o');
      const dir = path.join(tmp.path, 'versions', 'crash', '6b.o');
      // a write that died after linking the current file aside, before renaming its new file over it
      fs.linkSync(current, path.join(dir, `${v2.versionId}.o`));
      const ids = async () => (await b.listObjectVersions!('crash', {})).entries.map((e) => [e.versionId, e.isLatest, e.deleteMarker]);
      expect(await ids()).toEqual([
        [v2.versionId, true, false],
        [v1.versionId, false, false],
      ]);
      // a delete that died after writing its marker, before unlinking the current file
      const marker = newSeq();
      fs.writeFileSync(path.join(dir, `${marker}.m`), '');
      expect(await ids()).toEqual([
        [marker, true, true],
        [v2.versionId, false, false],
        [v1.versionId, false, false],
      ]);
      const v3 = await b.putObject('crash', 'k', Buffer.from('three'), { size: 5 });
      expect(await ids()).toEqual([
        [v3.versionId, true, false],
        [marker, false, true],
        [v2.versionId, false, false],
        [v1.versionId, false, false],
      ]);
      const read = async (id: string | undefined) => {
        const chunks: Buffer[] = [];
        for await (const c of (await b.getObject('crash', 'k', undefined, id)).body) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString();
      };
      expect([await read(v1.versionId), await read(v2.versionId), await read(v3.versionId)]).toEqual(['one', 'two', 'three']);
      expect((await b.getBuffer('crash', 'k')).data.toString()).toBe('three');
    } finally {
      await b.close();
      tmp.cleanup();
    }
  });
});
