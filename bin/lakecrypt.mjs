#!/usr/bin/env node
// lakecrypt admin CLI: runs src/cli/main.ts through tsx's loader, in this process.
import { register } from 'tsx/esm/api';

register();
process.env.LAKECRYPT_CLI_RUN = '1';
await import(new URL('../src/cli/main.ts', import.meta.url).href);
