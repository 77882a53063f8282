/**
 * docs/OPERATIONS.md "Tenants and datasets" stays true: its tenants settings block loads as a configuration and
 * means what the text says, and its datasets commands run as written against a gateway, in order.
 * ("Bring your own KMS" is run by test/ops/byok.test.ts.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/ops/config.ts';
import { ROOT } from '../../tools/gateway.ts';
import { makeTmpDir } from '../../tools/tmp.ts';
import { startAdminHarness, type AdminHarness } from '../admin/helpers.ts';

const doc = readFileSync(path.join(ROOT, 'docs/OPERATIONS.md'), 'utf8');
const start = doc.indexOf('\n## Tenants and datasets\n');
const section = doc.slice(start, doc.indexOf('\n## ', start + 5));
const blocks = (lang: string) => [...section.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm'))].map((m) => m[1]!);

describe('docs/OPERATIONS.md "Tenants and datasets"', () => {
  it('the tenants settings block loads and says what the text says', () => {
    const [yaml] = blocks('yaml');
    expect(yaml, 'a yaml block').toBeDefined();
    const dir = makeTmpDir('lakecrypt-opsdoc-').path;
    const file = path.join(dir, 'lakecrypt.yaml');
    // the doc writes "..." for secrets: give them real values, nothing else changes
    writeFileSync(file, yaml!.replaceAll('"..."', '"doc-example-secret-value-1"'));
    const cfg = loadConfig({ file, env: { LAKECRYPT_DATA_DIR: dir }, persistCredentials: false });
    expect(cfg.tenants).toEqual([
      expect.objectContaining({ name: 'acme', cmk: 'acme-cmk', buckets: ['acme-lake'], admins: [expect.objectContaining({ accessKey: 'acme-admin' })] }),
    ]);
    expect(cfg.cmks[0]).toMatchObject({ id: 'acme-cmk', provider: 'transit', tokenFile: '/run/secrets/acme', key: 'lake' });
    expect(cfg.users.find((u) => u.accessKey === 'acme-etl')).toMatchObject({ tenant: 'acme', buckets: ['*', 'acme-scratch'] });
  });

  describe('the datasets commands, as written', () => {
    let h: AdminHarness;
    beforeAll(async () => {
      h = await startAdminHarness();
      await h.s3.send(new CreateBucketCommand({ Bucket: 'lake' }));
      for (let i = 0; i < 5; i++) await h.s3.send(new PutObjectCommand({ Bucket: 'lake', Key: `finance/${i}`, Body: `row ${i}` }));
    });
    afterAll(async () => h?.close());

    it('create, list, show, adopt --wait and delete run in order and do what their comments say', async () => {
      const [cli] = blocks('');
      const lines = cli!.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
      expect(lines.map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
        'lakecrypt datasets create', 'lakecrypt datasets list', 'lakecrypt datasets show', 'lakecrypt datasets adopt', 'lakecrypt datasets delete',
      ]);
      // the last line deletes a dataset made by mistake: make that mistake first
      expect((await h.cli(['datasets', 'create', 'lake/typo'])).code).toBe(0);
      const out: string[] = [];
      for (const line of lines) {
        const r = await h.cli(line.split(/\s+/).slice(1));
        expect(r.code, `${line}\n${r.stderr}`).toBe(0);
        out.push(r.stdout);
      }
      expect(out[1]).toContain('lake/finance/');
      const shown = JSON.parse((await h.cli(['datasets', 'show', 'lake/finance/', '--json'])).stdout) as { pending: number | null };
      // after adopt --wait nothing under the prefix is left under the parent
      expect(shown.pending).toBe(0);
      expect((await h.cli(['datasets', 'list'])).stdout).not.toContain('lake/typo');
    });
  });
});
