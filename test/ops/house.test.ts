/**
 * The house rules of docs/DESIGN.md "Modules", read from the imports alone: folders import only what their row
 * allows, admin/ never reaches into server/, no value import runs in a circle, and a source file over ~450 lines
 * is named (with its reason) in DESIGN.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SRC = path.join(ROOT, 'src');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.d.mts')) out.push(p);
  }
  return out;
}

interface Edge { from: string; to: string; typeOnly: boolean }
function importsOf(file: string): Edge[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: Edge[] = [];
  // `import ... from '...'` and `export ... from '...'`, over several lines; `import type` is type-only
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?'(\.[^']+)'/gms)) {
    const target = path.resolve(path.dirname(file), m[2]!);
    out.push({ from: file, to: target, typeOnly: !!m[1] });
  }
  return out;
}

const files = sources(SRC);
const edges = files.flatMap(importsOf).filter((e) => e.to.startsWith(SRC));
const folderOf = (f: string) => path.relative(SRC, f).split(path.sep)[0]!.replace(/\.ts$/, '');

/** docs/DESIGN.md "Modules": what each folder may import (value imports; type-only imports of handed interfaces aside). */
const MAY: Record<string, string[]> = {
  errors: [],
  format: ['errors'],
  s3: ['errors', 'format'],
  ops: ['errors', 's3'],
  engine: ['errors', 'format', 'ops'],
  backend: ['errors', 's3', 'ops'],
  auth: ['errors'],
  keys: ['errors', 'format', 'backend', 'ops'],
  store: ['errors', 'format', 'engine', 'keys', 'backend', 's3', 'ops'],
  kms: ['errors', 'format', 'keys', 'auth', 's3', 'backend', 'ops'],
  server: ['errors', 'format', 'engine', 'store', 'keys', 'auth', 's3', 'backend', 'ops'],
  admin: ['errors', 'format', 'engine', 'store', 'keys', 'auth', 's3', 'backend', 'ops', 'dashboard', 'kms'],
  dashboard: [],
  cli: ['errors', 's3'],
  main: ['*'],
};

describe('the house, read from the imports', () => {
  it('each folder value-imports only the folders its DESIGN.md row allows', () => {
    // the reading itself works: every src file is seen, and their imports across folders
    expect(files.length).toBeGreaterThan(80);
    expect(edges.filter((e) => folderOf(e.from) !== folderOf(e.to)).length).toBeGreaterThan(100);
    const bad = edges
      .filter((e) => !e.typeOnly)
      .map((e) => [folderOf(e.from), folderOf(e.to), path.relative(ROOT, e.from)] as const)
      .filter(([a, b]) => a !== b && !(MAY[a] ?? []).includes(b) && !(MAY[a] ?? []).includes('*'))
      .map(([a, b, f]) => `${f}: ${a} -> ${b}`);
    expect(bad).toEqual([]);
  });

  it('admin/ imports nothing from server/, not even a type', () => {
    const bad = edges.filter((e) => folderOf(e.from) === 'admin' && folderOf(e.to) === 'server').map((e) => path.relative(ROOT, e.from));
    expect(bad).toEqual([]);
  });

  it('no value import runs in a circle', () => {
    const graph = new Map<string, string[]>();
    for (const e of edges) if (!e.typeOnly) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, trail: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(f)), f].map((x) => path.relative(SRC, x)).join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) visit(t, [...trail, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('a file over ~450 lines is named in DESIGN.md with the reason it stays whole', () => {
    const design = fs.readFileSync(path.join(ROOT, 'docs/DESIGN.md'), 'utf8');
    const section = design.slice(design.indexOf('Files over ~450 lines'));
    const long = files
      .map((f) => [path.relative(ROOT, f), fs.readFileSync(f, 'utf8').split('\n').length] as const)
      .filter(([, n]) => n > 470)
      .filter(([f]) => !section.includes('`' + f + '`'))
      .map(([f, n]) => `${f} (${n} lines)`);
    expect(long).toEqual([]);
  });
});
