/** SoftHSM2 token in a temp dir for key tests (SOFTHSM2_CONF must be set before the module is initialised). */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface TempToken {
  dir: string;
  conf: string;
  label: string;
  pin: string;
  soPin: string;
  module: string;
}

let shared: TempToken | undefined;

/** One temp token per test process (the PKCS#11 module reads SOFTHSM2_CONF once, at C_Initialize). */
export function tempSoftHsmToken(label = 'lakecrypt-test'): TempToken {
  if (shared) return shared;
  if (!existsSync(SOFTHSM_MODULE)) throw new Error(`SoftHSM2 not installed (${SOFTHSM_MODULE} missing): apt-get install -y softhsm2`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lc-softhsm-'));
  const tokens = path.join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = path.join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  // Distinctive, so that a test can look for it in logs, errors and serialized providers without false hits.
  const pin = 'hsm-pin-7c41e9';
  const soPin = '87654321';
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: 'pipe',
  });
  shared = { dir, conf, label, pin, soPin, module: SOFTHSM_MODULE };
  return shared;
}
