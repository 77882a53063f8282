/**
 * The chunk layout constants (workers/chunk-layout.mjs, used by the engine and the worker threads alike) against
 * the text of docs/FORMAT.md: a change on either side without the other fails here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as layout from '../../workers/chunk-layout.mjs';
import * as engineLayout from '../../src/format/layout.ts';

const spec = readFileSync(path.resolve(import.meta.dirname, '../../docs/FORMAT.md'), 'utf8');

describe('chunk layout = docs/FORMAT.md', () => {
  it('CHUNK and TAG as the spec defines them', () => {
    const m = /`CHUNK` = (\d+) \(plaintext bytes per chunk\)\. `TAG` = (\d+)\./.exec(spec);
    expect(m, 'FORMAT.md defines CHUNK and TAG').not.toBeNull();
    expect(layout.CHUNK_SIZE).toBe(Number(m![1]));
    expect(layout.TAG_SIZE).toBe(Number(m![2]));
  });

  it('the chunk AAD: field offsets and total size computed from the spec line', () => {
    const line = /^aad\s+= (.+?)\s+\((\d+) bytes\)$/m.exec(spec);
    expect(line, 'FORMAT.md 2.2 has the aad line').not.toBeNull();
    const ids = /`datasetId` = SHA-256\(UTF-8 dataset name\), (\d+) bytes/.exec(spec);
    const oid = /`oid`[^\n]*?(\d+) random bytes/.exec(spec) ?? /`oid`[^\n]*?\((\d+) bytes\)/.exec(spec);
    const size = (field: string): [string, number] => {
      if (field === '"LKC1"') return ['magic', 4];
      if (field === 'datasetId') return ['datasetId', Number(ids![1])];
      if (field === 'oid') return ['oid', oid ? Number(oid[1]) : 16];
      const m = /^uint(8|32)\((\w+)\)$/.exec(field);
      expect(m, `aad field ${field}`).not.toBeNull();
      const name = { partNumber: 'part', b: 'block', c: 'chunk', flags: 'flags' }[m![2]!]!;
      return [name, Number(m![1]) / 8];
    };
    const offsets: Record<string, number> = {};
    let at = 0;
    for (const f of line![1]!.split('||').map((s) => s.trim())) {
      const [name, n] = size(f);
      offsets[name] = at;
      at += n;
    }
    expect(at).toBe(Number(line![2]));
    expect(layout.AAD_SIZE).toBe(at);
    const { magic: _magic, ...fields } = offsets;
    expect({ ...layout.AAD_OFF }).toEqual(fields);
  });

  it('the nonce: zeros, then uint32(c), 12 bytes', () => {
    expect(spec).toMatch(/^nonce = 0x00 \* 8 \|\| uint32\(c\)\s+\(12 bytes\)$/m);
    expect(layout.NONCE_SIZE).toBe(12);
    expect(layout.chunkNonce(0x01020304).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]))).toBe(true);
    expect(spec).toMatch(/flags = 0x01 if this is the last chunk of the part/);
    expect(layout.FLAG_LAST).toBe(0x01);
  });

  it('the engine uses the same constants as the workers (one source)', () => {
    expect(engineLayout.CHUNK_SIZE).toBe(layout.CHUNK_SIZE);
    expect(engineLayout.AAD_OFF).toBe(layout.AAD_OFF);
    expect(engineLayout.TAG_SIZE).toBe(layout.TAG_SIZE);
  });
});
