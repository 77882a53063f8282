/** Regenerates docs/CONFIGURATION.md and config/lakecrypt.yaml from the settings table in src/ops/config.ts. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderConfigDoc, renderDefaultYaml } from '../src/ops/config-doc.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
fs.writeFileSync(path.join(root, 'docs/CONFIGURATION.md'), renderConfigDoc());
fs.mkdirSync(path.join(root, 'config'), { recursive: true });
fs.writeFileSync(path.join(root, 'config/lakecrypt.yaml'), renderDefaultYaml());
console.log('wrote docs/CONFIGURATION.md and config/lakecrypt.yaml');
