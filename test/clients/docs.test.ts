/**
 * docs/clients.md stays true: every fenced code block in it is a snippet that appears verbatim (indentation
 * removed) between `docs:begin <name>` / `docs:end` markers in the client tests or their Python scripts, and
 * every marked snippet is in the doc.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

function dedent(lines: string[]): string {
  const ind = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(ind)).join('\n').trim();
}

export function snippets(): Map<string, string> {
  const out = new Map<string, string>();
  const dirs = [path.join(root, 'test/clients'), path.join(root, 'test/clients/py')];
  for (const dir of dirs) {
    for (const f of readdirSync(dir)) {
      if (!/\.(ts|py)$/.test(f)) continue;
      const lines = readFileSync(path.join(dir, f), 'utf8').split('\n');
      for (let i = 0; i < lines.length; i++) {
        const m = /(?:\/\/|#) docs:begin (\S+)/.exec(lines[i]!);
        if (!m) continue;
        const end = lines.findIndex((l, j) => j > i && /(?:\/\/|#) docs:end/.test(l));
        expect(end, `${f}: docs:begin ${m[1]} without docs:end`).toBeGreaterThan(i);
        out.set(m[1]!, dedent(lines.slice(i + 1, end)));
        i = end;
      }
    }
  }
  return out;
}

function docBlocks(): string[] {
  const md = readFileSync(path.join(root, 'docs/clients.md'), 'utf8');
  return [...md.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => m[1]!.trim());
}

describe('docs/clients.md', () => {
  it('every code block is a snippet from the tests, verbatim, and every snippet is documented', () => {
    const snips = snippets();
    expect([...snips.keys()].sort()).toEqual(['awscli-config', 'boto3', 'delta', 'duckdb', 'duckdb-copy', 'mc', 'polars', 'pyarrow', 'pyiceberg', 'rclone', 's3cmd', 'spark-s3a']);
    const blocks = docBlocks();
    const known = new Set(snips.values());
    for (const b of blocks) expect(known.has(b), `not a test snippet:\n${b}`).toBe(true);
    for (const [name, s] of snips) expect(blocks.includes(s), `snippet ${name} missing from docs/clients.md`).toBe(true);
  });

  it('the lake engine versions the page calls tested are the ones scripts/test-deps.sh installs', () => {
    const md = readFileSync(path.join(root, 'docs/clients.md'), 'utf8');
    const deps = readFileSync(path.join(root, 'scripts/test-deps.sh'), 'utf8');
    for (const pkg of ['deltalake', 'pyiceberg']) {
      const pinned = new RegExp(`\\b${pkg}(?:\\[[^\\]]*\\])?==(\\d+\\.\\d+)\\.`).exec(deps)?.[1];
      expect(pinned, `${pkg} pinned in scripts/test-deps.sh`).toBeDefined();
      expect(md, `docs/clients.md names ${pkg} ${pinned}`).toMatch(new RegExp(`Tested: \`?${pkg}\`? ${pinned!.replace('.', '\\.')}\\b`));
    }
  });
});
