/**
 * Dataset resolution: which dataset an object belongs to (the longest "bucket/prefix" matching its key, else its
 * bucket) and which CMK a new dataset is bound to. The table is the union of the configured datasets (which seed
 * the registry, dataset-registry.ts) and the registry as last loaded from the keystore: the key service reloads
 * it at start and whenever the keystore epoch moves, so a dataset created or deleted through any gateway routes
 * on every gateway within an epoch poll. `datasetFor` stays synchronous: it reads the loaded table.
 *
 * Routing decides where NEW objects go. A stored object belongs to the dataset its header names, which may be an
 * ancestor of its route (the bucket, or a shorter prefix) when the prefix dataset was created after it was
 * written: `headerDataset` accepts exactly those (the routing-tree path of the key) and nothing else.
 */
import { createHash } from 'node:crypto';
import { S3Error } from '../errors.ts';
import type { RegisteredDataset } from './dataset-registry.ts';

export interface DatasetConfig {
  /** "bucket" or "bucket/prefix". */
  name: string;
  /** CMK id (key of `cmks`); default `defaultCmk`. */
  cmk?: string;
}

/** What routing needs of a tenant: its CMK and the buckets it owns from the configuration. */
export interface TenantRouting {
  name: string;
  cmk: string;
  buckets: string[];
}

/** One dataset of the routing table, resolved. */
export interface DatasetEntry {
  name: string;
  bucket: string;
  /** '' for a whole-bucket dataset. */
  prefix: string;
  cmk: string;
  /** Listed in this gateway's configuration (`datasets`); `registered`: in the keystore's registry. */
  configured: boolean;
  registered: boolean;
}

/** What the other parts of the key service need to know about datasets. */
export interface DatasetResolver {
  /** Dataset of a new object: the longest "bucket/prefix" matching the key, else the bucket. */
  datasetFor(bucket: string, key: string): string;
  /** CMK a dataset's record is created under (its registered or configured CMK, else the default). */
  cmkForNew(dataset: string): string;
}

interface Routed extends DatasetEntry {
  id: Buffer;
  /** Adopted in full (registry `closedAt`): headers under it may no longer name an ancestor. */
  closed?: boolean;
}

const idOf = (name: string): Buffer => createHash('sha256').update(name, 'utf8').digest();

function split(name: string): { bucket: string; prefix: string } {
  const i = name.indexOf('/');
  return i < 0 ? { bucket: name, prefix: '' } : { bucket: name.slice(0, i), prefix: name.slice(i + 1) };
}

export class Datasets implements DatasetResolver {
  private readonly configured: DatasetConfig[];
  private registered: RegisteredDataset[] = [];
  /** bucket -> its datasets, longest prefix first. */
  private byBucket = new Map<string, Routed[]>();
  private readonly defaultCmk: string;
  /** tenant -> its CMK; bucket -> owner tenant (configured, then created at run time: the registry's owners). */
  private readonly tenantCmk = new Map<string, string>();
  private readonly configuredOwner = new Map<string, string>();
  private createdOwner = new Map<string, string>();

  /**
   * `cmks.hasCmk` says whether a CMK id is configured; an unknown one is refused here, at start-up. `tenants`:
   * a dataset of a bucket a tenant owns is created under the tenant's CMK unless it names one of its own.
   */
  constructor(configs: DatasetConfig[], cmks: { defaultCmk: string; hasCmk(id: string): boolean }, tenants: TenantRouting[] = []) {
    this.defaultCmk = cmks.defaultCmk;
    for (const t of tenants) {
      if (!cmks.hasCmk(t.cmk)) throw new S3Error('InvalidArgument', `tenant ${t.name}: CMK "${t.cmk}" not configured`);
      this.tenantCmk.set(t.name, t.cmk);
      for (const b of t.buckets) this.configuredOwner.set(b, t.name);
    }
    for (const d of configs) {
      const cmk = d.cmk ?? cmks.defaultCmk;
      if (!cmks.hasCmk(cmk)) throw new S3Error('InvalidArgument', `dataset ${d.name}: CMK "${cmk}" not configured`);
    }
    // a configured dataset without a CMK of its own, in a bucket a tenant owns: the tenant's CMK
    const tenantCmkOf = (name: string) => this.tenantCmk.get(this.configuredOwner.get(split(name).bucket) ?? '');
    this.configured = configs.map((d) => ({ name: d.name, cmk: d.cmk ?? tenantCmkOf(d.name) ?? cmks.defaultCmk }));
    this.rebuild();
  }

  /** Replace the registry part of the table (the key service calls this after each load). */
  setRegistered(entries: RegisteredDataset[], owners: Record<string, { tenant: string }> = {}): void {
    this.registered = entries.map((e) => ({ ...e }));
    this.createdOwner = new Map(Object.entries(owners).map(([b, o]) => [b, o.tenant]));
    this.rebuild();
  }

  /** The tenant owning a bucket: the configuration's, else the registry's record of who created it. */
  bucketOwner(bucket: string): string | undefined {
    return this.configuredOwner.get(bucket) ?? this.createdOwner.get(bucket);
  }

  private rebuild(): void {
    const all = new Map<string, Routed>();
    for (const c of this.configured) {
      all.set(c.name, { name: c.name, ...split(c.name), cmk: c.cmk ?? this.defaultCmk, configured: true, registered: false, id: idOf(c.name) });
    }
    for (const r of this.registered) {
      const have = all.get(r.name);
      if (have) Object.assign(have, { registered: true, cmk: r.cmk, closed: !!r.closedAt });
      else all.set(r.name, { name: r.name, ...split(r.name), cmk: r.cmk, configured: false, registered: true, id: idOf(r.name), closed: !!r.closedAt });
    }
    const byBucket = new Map<string, Routed[]>();
    for (const e of all.values()) {
      const list = byBucket.get(e.bucket) ?? [];
      list.push(e);
      byBucket.set(e.bucket, list);
    }
    for (const list of byBucket.values()) list.sort((a, b) => b.prefix.length - a.prefix.length);
    this.byBucket = byBucket;
  }

  datasetFor(bucket: string, key: string): string {
    const list = this.byBucket.get(bucket);
    if (list) for (const d of list) if (key.startsWith(d.prefix)) return d.name;
    return bucket;
  }

  /**
   * The datasets that could have routed this key at some time: its route first, then every shorter match, the
   * bucket last (the key's path in the routing tree).
   */
  ancestry(bucket: string, key: string): string[] {
    const out: string[] = [];
    const list = this.byBucket.get(bucket);
    if (list) for (const d of list) if (key.startsWith(d.prefix)) out.push(d.name);
    if (!out.includes(bucket)) out.push(bucket);
    return out;
  }

  /**
   * The dataset a stored header of bucket/key may name, given the datasetId in its fixed fields: the key's route
   * or one of its ancestors; null for any other dataset (a header moved from elsewhere).
   */
  headerDataset(bucket: string, key: string, datasetId: Buffer): string | null {
    const list = this.byBucket.get(bucket);
    let bucketSeen = false;
    if (list) {
      for (const d of list) {
        if (!key.startsWith(d.prefix)) continue;
        if (d.prefix === '' && d.name === bucket) bucketSeen = true;
        if (d.id.equals(datasetId)) return d.name;
        // adopted in full: nothing under it may name an ancestor any more (a rolled-back pre-adoption copy)
        if (d.closed) return null;
      }
    }
    if (!bucketSeen && idOf(bucket).equals(datasetId)) return bucket;
    return null;
  }

  cmkForNew(dataset: string): string {
    for (const list of this.byBucket.values()) for (const d of list) if (d.name === dataset) return d.cmk;
    const owner = this.bucketOwner(split(dataset).bucket);
    return (owner !== undefined ? this.tenantCmk.get(owner) : undefined) ?? this.defaultCmk;
  }

  /** Whether this gateway's configuration lists the dataset (it is seeded again at every start). */
  isConfigured(name: string): boolean {
    return this.configured.some((c) => c.name === name);
  }

  /** The configured datasets, as seeds for the registry. */
  seeds(): { name: string; cmk: string }[] {
    return this.configured.map((c) => ({ name: c.name, cmk: c.cmk ?? this.defaultCmk }));
  }

  /** The routing table (a copy), by name. */
  list(): DatasetEntry[] {
    const out: DatasetEntry[] = [];
    for (const list of this.byBucket.values()) for (const { id: _id, ...d } of list) out.push({ ...d });
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
}
