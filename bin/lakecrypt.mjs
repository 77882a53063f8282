#!/usr/bin/env node
// lakecrypt admin CLI: runs the compiled build (dist/src/cli/main.js). In a source checkout the build is
// remade first when src/ changed since it was made (a few stat() calls when it did not; scripts/build.mjs).
import { pathToFileURL } from 'node:url';
import { CLI_JS, ensureBuilt } from '../scripts/build.mjs';

try {
  await ensureBuilt();
} catch (e) {
  process.stderr.write(`lakecrypt: cannot build the CLI (npm run build): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
  process.exit(1);
}
process.env.LAKECRYPT_CLI_RUN = '1';
await import(pathToFileURL(CLI_JS).href);
