/**
 * Issue #20 item 5, as an admin meets it through the CLI (bin/lakecrypt, the compiled build) against a gateway
 * process: `backup` says which CMK versions the file depends on and never overwrites a file without --force; after
 * `cmk rotate` (which disables the old CMK version) the older backup cannot be restored into a fresh keystore by
 * accident — refused, naming the version — while the newer one restores. The revoke prompt says what it will revoke.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchGateway, newCredentials, type GatewayProcess } from '../../tools/gateway.ts';
import { makeTmpDir, type TmpDir } from '../../tools/tmp.ts';
import { jsonError, lakecrypt, userEnv } from './cli-helpers.ts';

const root = newCredentials();
let tmp: TmpDir;
let gw: GatewayProcess;
let fresh: GatewayProcess;
const envOf = (g: GatewayProcess) => userEnv(path.join(tmp.path, 'home'), { LAKECRYPT_ADMIN_URL: g.adminUrl, LAKECRYPT_ACCESS_KEY: root.accessKey, LAKECRYPT_SECRET_KEY: root.secretKey });

beforeAll(async () => {
  tmp = makeTmpDir('lakecrypt-cli-backup-');
  const dataDir = path.join(tmp.path, 'data');
  gw = await launchGateway({ credentials: root, quiet: true, dataDir, env: { LAKECRYPT_META_BUCKET: 'lakecrypt-meta' } });
  // a second gateway on the same CMK key file with an empty keystore of its own (another meta bucket)
  fresh = await launchGateway({ credentials: root, quiet: true, dataDir, env: { LAKECRYPT_META_BUCKET: 'lakecrypt-meta-fresh' } });
  const s3 = new S3Client({ endpoint: gw.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: root.accessKey, secretAccessKey: root.secretKey } });
  await s3.send(new CreateBucketCommand({ Bucket: 'bk-data' }));
  await s3.send(new PutObjectCommand({ Bucket: 'bk-data', Key: 'k', Body: 'x' }));
}, 180_000);

afterAll(async () => {
  await fresh?.stop();
  await gw?.stop();
  tmp?.cleanup();
});

describe('the revoke prompt states its scope', () => {
  it('without --version: every version of the dataset; with it: that version; nothing is revoked without --yes', async () => {
    const all = await lakecrypt(['keys', 'revoke', 'bk-data', '--json'], envOf(gw));
    expect(all.code).toBe(2);
    expect(jsonError(all)).toMatchObject({ code: 'ConfirmationRequired' });
    expect(jsonError(all).message).toMatch(/without --version it revokes EVERY version of bk-data/);
    const one = await lakecrypt(['keys', 'revoke', 'bk-data', '--version', '1'], envOf(gw));
    expect(one.code).toBe(2);
    expect(one.stderr).toMatch(/version 1 of bk-data: the data under it becomes unreadable until restored\): add --yes/);
    const list = JSON.parse((await lakecrypt(['keys', 'list', '--json'], envOf(gw))).stdout) as { datasets: { dataset: string; versions: { state: string }[] }[] };
    expect(list.datasets.find((d) => d.dataset === 'bk-data')!.versions.map((v) => v.state)).toEqual(['active']);
  });
});

describe('backup and restore through the CLI', () => {
  it('backup names the CMK versions it needs, is 0600, and refuses to overwrite without --force', async () => {
    const file = path.join(tmp.path, 'ks-before.json');
    const r = await lakecrypt(['backup', file], envOf(gw));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restoring it needs CMK version\(s\): default v1/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8')).cmkVersions).toEqual({ default: [1] });
    writeFileSync(path.join(tmp.path, 'marker.txt'), 'mine');
    const again = await lakecrypt(['backup', path.join(tmp.path, 'marker.txt'), '--json'], envOf(gw));
    expect(again.code).toBe(2);
    expect(jsonError(again).code).toBe('FileExists');
    expect(readFileSync(path.join(tmp.path, 'marker.txt'), 'utf8')).toBe('mine');
    const forced = await lakecrypt(['backup', path.join(tmp.path, 'marker.txt'), '--force'], envOf(gw));
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(tmp.path, 'marker.txt'), 'utf8')).format).toBe('lakecrypt-keystore/1');
  });

  it('after cmk rotate the older backup is refused (naming the version), the newer one restores', async () => {
    const rot = await lakecrypt(['cmk', 'rotate', '--json'], envOf(gw));
    expect(rot.code, rot.stderr).toBe(0);
    const after = path.join(tmp.path, 'ks-after.json');
    expect((await lakecrypt(['backup', after], envOf(gw))).code).toBe(0);
    expect(JSON.parse(readFileSync(after, 'utf8')).cmkVersions).toEqual({ default: [2] });

    const old = await lakecrypt(['restore', path.join(tmp.path, 'ks-before.json'), '--json'], envOf(fresh));
    expect(old.code).toBe(1);
    expect(jsonError(old)).toMatchObject({ code: 'InvalidRequest' });
    expect(jsonError(old).message).toMatch(/default v1.*disabled or destroyed/);
    const ok = await lakecrypt(['restore', after, '--json'], envOf(fresh));
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ created: 1 });
    expect(existsSync(after)).toBe(true);
  });
});
