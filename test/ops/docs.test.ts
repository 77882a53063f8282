import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigSchema, SETTINGS } from '../../src/ops/config.ts';
import { renderConfigDoc, renderDefaultYaml } from '../../src/ops/config-doc.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const doc = fs.readFileSync(path.join(ROOT, 'docs/CONFIGURATION.md'), 'utf8');
const yamlText = fs.readFileSync(path.join(ROOT, 'config/lakecrypt.yaml'), 'utf8');

/** Leaf paths of the zod schema (objects are descended; arrays are leaves). */
function leaves(schema: z.ZodType, prefix = ''): string[] {
  let s = schema;
  while (s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  if (s instanceof z.ZodObject) {
    return Object.entries(s.shape as Record<string, z.ZodType>).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  }
  return [prefix];
}

describe('configuration docs', () => {
  const schemaKeys = leaves(ConfigSchema as unknown as z.ZodType);

  it('the settings table and the schema have the same keys', () => {
    expect([...schemaKeys].sort()).toEqual(Object.keys(SETTINGS).sort());
  });

  it('every setting and env var is in docs/CONFIGURATION.md', () => {
    for (const k of schemaKeys) {
      const s = SETTINGS[k as keyof typeof SETTINGS];
      expect(doc, k).toContain(`| \`${k}\` | \`${s.env}\``);
    }
  });

  it('every setting is in config/lakecrypt.yaml (set, or commented out when unset by default)', () => {
    const parsed = YAML.parse(yamlText) ?? {};
    for (const k of schemaKeys) {
      const s = SETTINGS[k as keyof typeof SETTINGS];
      const parts = k.split('.');
      const name = parts[parts.length - 1]!;
      const indent = parts.length > 1 ? '  ' : '';
      expect(yamlText, k).toMatch(new RegExp(`^${indent}(# )?${name}:`, 'm'));
      expect(yamlText, k).toContain(`# env: ${s.env}`);
      const v = parts.reduce<unknown>((o, p) => (o as Record<string, unknown> | null)?.[p], parsed);
      if (s.default !== undefined) expect(v, k).toEqual(s.default);
      else expect(v ?? undefined, k).toBeUndefined();
    }
  });

  it('the committed files are up to date (npx tsx scripts/gen-config-doc.ts)', () => {
    expect(doc).toBe(renderConfigDoc());
    expect(yamlText).toBe(renderDefaultYaml());
  });
});
