/**
 * `npx tsx src/ops/config-cli-check.ts`: validate the configuration (file + LAKECRYPT_* env) without starting.
 * Valid: prints the effective configuration as JSON with secrets replaced by "***", exit 0.
 * Invalid: ONE line on stderr naming the setting, exit 1. Generated credentials are not written.
 */
import { loadConfigOrExit, redactConfig, unknownEnvVars } from './config.ts';

const cfg = loadConfigOrExit({ persistCredentials: false });
for (const w of cfg.meta.warnings) process.stderr.write(`lakecrypt: warning: ${w}\n`);
for (const v of unknownEnvVars()) process.stderr.write(`lakecrypt: warning: unknown environment variable ${v}\n`);
const shown = redactConfig(cfg) as Record<string, unknown>;
if (cfg.meta.credentials === 'ephemeral') {
  shown.accessKey = `(generated at first start into ${cfg.meta.credentialsFile})`;
}
process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
