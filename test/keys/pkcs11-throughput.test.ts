/** Sanity check of PKCS#11 wrap+unwrap throughput on SoftHSM (design assumes thousands of pairs per second). */
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { Pkcs11CmkProvider } from '../../src/keys/pkcs11-cmk.ts';
import { tempSoftHsmToken } from './softhsm.ts';

const token = tempSoftHsmToken();
const p = new Pkcs11CmkProvider({ module: token.module, tokenLabel: token.label, pin: token.pin, id: 'bench' });
afterAll(() => p.close());

it('wrap+unwrap pairs per second', async () => {
  const kek = randomBytes(32);
  const aad = Buffer.from('bench');
  await p.wrap(kek, aad);
  const n = 2000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const w = await p.wrap(kek, aad);
    (await p.unwrap(w, aad)).fill(0);
  }
  const perSec = n / ((performance.now() - t0) / 1000);
  console.log(`pkcs11 wrap+unwrap: ${Math.round(perSec)} pairs/s`);
  expect(perSec).toBeGreaterThan(500);
});
