/**
 * Tamper-evident audit log in the meta bucket: `audit/<seq 12 digits>.json`, seq starting at 1.
 * Entry = { seq, ts, event, actor, details, prev, hash, mac }:
 *   hash = sha256hex(canonicalJSON({ seq, ts, event, actor, details, prev })), prev = hash of entry seq-1
 *   (64 zeros for seq 1), mac = HMAC-SHA256hex(macKey, hash).
 * Appends use If-None-Match: * and move on to the next seq on conflict (several gateways append concurrently).
 * verify() detects edited, reordered and removed (gap) entries; removal of the newest entries (truncation) is only
 * detectable against an externally remembered head (`verify({ expectHead })`).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Backend } from '../backend/types.ts';
import { S3Error, isS3Error } from '../errors.ts';
import { Keystore } from './keystore.ts';
import { Mutex } from './local-cmk.ts';

// The MAC secret is loaded from the keystore and the CMKs alone (audit-key.ts), not through the key service.
export { loadAuditKey, type AuditKeySource } from './audit-key.ts';

export const AUDIT_PREFIX = 'audit/';
const ZERO_HASH = '0'.repeat(64);

export interface AuditEntry {
  seq: number;
  ts: string;
  event: string;
  actor: string;
  details: Record<string, unknown>;
  prev: string;
  hash: string;
  mac: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  count: number;
  /** seq (position) of the first bad entry */
  firstBad?: number;
  reason?: string;
}

export const auditKeyName = (seq: number): string => `${AUDIT_PREFIX}${String(seq).padStart(12, '0')}.json`;

/** Deterministic JSON: object keys sorted recursively; undefined members dropped. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString('base64'));
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

export function entryHash(e: Pick<AuditEntry, 'seq' | 'ts' | 'event' | 'actor' | 'details' | 'prev'>): string {
  const body = { seq: e.seq, ts: e.ts, event: e.event, actor: e.actor, details: e.details, prev: e.prev };
  return createHash('sha256').update(canonicalJson(body), 'utf8').digest('hex');
}

export class AuditLog {
  private readonly backend: Backend;
  private readonly metaBucket: string;
  private readonly macKey: Buffer;
  private readonly keystore: Keystore;
  private readonly mutex = new Mutex();
  /** Last entry this instance knows of (tail cache). */
  private head?: { seq: number; hash: string };

  constructor(opts: { backend: Backend; metaBucket: string; macKey: Buffer }) {
    if (opts.macKey.length < 16) throw new S3Error('InvalidArgument', 'audit MAC key too short');
    this.backend = opts.backend;
    this.metaBucket = opts.metaBucket;
    this.macKey = Buffer.from(opts.macKey);
    this.keystore = new Keystore({ backend: opts.backend, metaBucket: opts.metaBucket });
  }

  private mac(hash: string): string {
    return createHmac('sha256', this.macKey).update(hash, 'utf8').digest('hex');
  }

  private async read(seq: number): Promise<AuditEntry | null> {
    return (await this.keystore.readJson<AuditEntry>(auditKeyName(seq)))?.value ?? null;
  }

  /** Every entry key in order. */
  private async keys(startAfter?: string): Promise<string[]> {
    await this.keystore.ensureBucket();
    const out: string[] = [];
    let token: string | undefined;
    do {
      const r = await this.backend.listObjects(this.metaBucket, { prefix: AUDIT_PREFIX, startAfter: token ? undefined : startAfter, continuationToken: token, maxKeys: 1000 });
      for (const o of r.objects) if (/^audit\/\d{12}\.json$/.test(o.key)) out.push(o.key);
      token = r.isTruncated ? r.nextContinuationToken : undefined;
    } while (token);
    return out.sort();
  }

  private async findHead(): Promise<{ seq: number; hash: string }> {
    const startAfter = this.head ? auditKeyName(this.head.seq) : undefined;
    const ks = await this.keys(startAfter);
    if (!ks.length) return this.head ?? { seq: 0, hash: ZERO_HASH };
    const last = await this.read(Number(ks[ks.length - 1].slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12)));
    if (!last) return this.head ?? { seq: 0, hash: ZERO_HASH };
    return { seq: last.seq, hash: last.hash };
  }

  /** Told of every append that failed (a counter for /metrics); the caller still gets the rejection. */
  onAppendFailure?: () => void;

  /** Append one event; returns the written entry. */
  append(event: string, details: Record<string, unknown> = {}, actor = 'system'): Promise<AuditEntry> {
    const p = this.appendOnce(event, details, actor);
    // a side branch that only counts: the caller handles (or reports) the rejection of p itself
    p.catch(() => this.onAppendFailure?.());
    return p;
  }

  private appendOnce(event: string, details: Record<string, unknown>, actor: string): Promise<AuditEntry> {
    return this.mutex.run(async () => {
      let head = this.head ?? (await this.findHead());
      for (let attempt = 0; attempt < 1000; attempt++) {
        const base = { seq: head.seq + 1, ts: new Date().toISOString(), event, actor, details: JSON.parse(canonicalJson(details)) as Record<string, unknown>, prev: head.hash };
        const hash = entryHash(base);
        const entry: AuditEntry = { ...base, hash, mac: this.mac(hash) };
        try {
          await this.keystore.writeJson(auditKeyName(entry.seq), entry, null);
          this.head = { seq: entry.seq, hash };
          return entry;
        } catch (e) {
          if (!isS3Error(e, 'PreconditionFailed')) throw e;
          // another gateway took this seq: chain onto its entry
          const other = await this.read(base.seq);
          head = other ? { seq: other.seq, hash: other.hash } : await this.findHead();
        }
      }
      throw new S3Error('SlowDown', 'audit log contention');
    });
  }

  /** Entries in seq order: `since` = first seq to include (default 1), `limit` = max entries (default 1000). */
  async list(opts: { limit?: number; since?: number } = {}): Promise<AuditEntry[]> {
    const since = Math.max(1, opts.since ?? 1);
    const limit = opts.limit ?? 1000;
    const ks = await this.keys(since > 1 ? auditKeyName(since - 1) : undefined);
    const out: AuditEntry[] = [];
    for (const k of ks) {
      if (out.length >= limit) break;
      const e = (await this.keystore.readJson<AuditEntry>(k))?.value;
      if (e) out.push(e);
    }
    return out;
  }

  /** Check the whole chain. `expectHead` (seq, hash remembered elsewhere) also detects truncation. */
  async verify(opts: { expectHead?: { seq: number; hash: string } } = {}): Promise<AuditVerifyResult> {
    const ks = await this.keys();
    let prev = ZERO_HASH;
    let expected = 1;
    let count = 0;
    const bad = (reason: string): AuditVerifyResult => ({ ok: false, count, firstBad: expected, reason });
    for (const k of ks) {
      const nameSeq = Number(k.slice(AUDIT_PREFIX.length, AUDIT_PREFIX.length + 12));
      if (nameSeq !== expected) return bad(`entry ${expected} missing (next is ${nameSeq})`);
      let e: AuditEntry | undefined;
      try {
        e = (await this.keystore.readJson<AuditEntry>(k))?.value;
      } catch {
        // not swallowed: an unreadable entry is the verdict (the chain cannot be checked past it)
        return bad(`entry ${expected} unreadable`);
      }
      if (!e) return bad(`entry ${expected} missing`);
      if (e.seq !== expected) return bad(`entry ${expected} holds seq ${e.seq} (reordered)`);
      if (e.prev !== prev) return bad(`entry ${expected} does not chain to its predecessor`);
      const h = entryHash(e);
      if (h !== e.hash) return bad(`entry ${expected} content does not match its hash (edited)`);
      const m = Buffer.from(this.mac(h), 'hex');
      const got = Buffer.from(String(e.mac), 'hex');
      if (got.length !== m.length || !timingSafeEqual(got, m)) return bad(`entry ${expected} MAC invalid`);
      prev = e.hash;
      count++;
      expected++;
    }
    if (opts.expectHead) {
      if (count < opts.expectHead.seq) return { ok: false, count, firstBad: count + 1, reason: `log truncated: expected at least ${opts.expectHead.seq} entries` };
      const at = await this.read(opts.expectHead.seq);
      if (!at || at.hash !== opts.expectHead.hash) return { ok: false, count, firstBad: opts.expectHead.seq, reason: 'remembered head does not match' };
    }
    return { ok: true, count };
  }
}
