/**
 * The dataset registry: datasets as run-time objects, in one document of the keystore
 * (`keystore/datasets.json` in the meta bucket), updated like every keystore object by conditional
 * read-modify-write. The configuration's `datasets` only seed it (created when missing, never deleted); the admin
 * API creates and deletes entries. Every change bumps `keystore/epoch`, so every gateway reloads its routing
 * table within its epoch poll (DatasetResolver in datasets.ts holds the loaded copy).
 *
 * Names: "bucket" or "bucket/prefix". The bucket part follows S3's bucket naming rules; the prefix is a key prefix
 * matched byte for byte as S3 prefixes are: "lake/finance/" covers the keys under the folder `finance/`,
 * "lake/finance" every key starting with `finance` (`finance-2024/...` too). It may end with '/' or not.
 */
import { S3Error } from '../errors.ts';
import { NO_CHANGE, type Keystore } from './keystore.ts';

export const REGISTRY_KEY = 'keystore/datasets.json';
/** Longest prefix accepted, in UTF-8 bytes (S3's longest key). */
export const MAX_PREFIX_BYTES = 1024;

export interface RegisteredDataset {
  name: string;
  /** CMK a new record of the dataset is created under. */
  cmk: string;
  createdAt: string;
  /** Who created the entry: `admin:<access key>`, or `config` for a seeded one. */
  createdBy: string;
  /**
   * Set when an adoption left no object under the prefix sealed under an ancestor: from then on a header under
   * the prefix that names an ancestor is refused (IntegrityError), so a backend that rolls an object back to its
   * pre-adoption copy cannot escape a revocation of this dataset.
   */
  closedAt?: string;
}

/** A bucket a tenant's user created through the gateway: it belongs to that tenant (on every gateway). */
export interface BucketOwner {
  tenant: string;
  createdAt: string;
  /** `user:<tenant>/<access key>`. */
  createdBy: string;
}

export interface RegistryDoc {
  format: 'lakecrypt-datasets/1';
  datasets: Record<string, RegisteredDataset>;
  /** bucket -> owner tenant, for buckets created by a tenant's user (configured tenant buckets are not here). */
  owners?: Record<string, BucketOwner>;
}

const emptyDoc = (): RegistryDoc => ({ format: 'lakecrypt-datasets/1', datasets: {} });

/** Why `bucket` is not an S3 bucket name (null when it is one): the rule broken, in words. */
export function bucketNameProblem(bucket: string): string | null {
  if (bucket.length < 3 || bucket.length > 63) return `the bucket name must be 3 to 63 characters long (it has ${bucket.length})`;
  if (!/^[a-z0-9.-]*$/.test(bucket)) return "the bucket name may contain only lowercase letters, digits, '.' and '-'";
  if (!/^[a-z0-9]/.test(bucket)) return 'the bucket name must start with a lowercase letter or a digit';
  if (!/[a-z0-9]$/.test(bucket)) return 'the bucket name must end with a lowercase letter or a digit';
  if (bucket.includes('..')) return "the bucket name must not contain '..'";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return 'the bucket name must not look like an IP address';
  if (bucket.startsWith('xn--') || bucket.startsWith('sthree-')) return "the bucket name must not start with 'xn--' or 'sthree-'";
  if (bucket.endsWith('-s3alias') || bucket.endsWith('--ol-s3')) return "the bucket name must not end with '-s3alias' or '--ol-s3'";
  return null;
}

/** Why `prefix` (the part after the first '/') is not a dataset prefix (null when it is one). */
export function prefixProblem(prefix: string): string | null {
  if (prefix === '') return "the prefix after '/' is empty (name the bucket alone for a whole-bucket dataset)";
  if (prefix.startsWith('/')) return "the name must not contain '//' (the prefix starts with '/')";
  if (prefix.includes('//')) return "the prefix must not contain '//'";
  if (prefix.split('/').includes('..')) return "the prefix must not contain a '..' segment";
  // eslint-disable-next-line no-control-regex -- control characters are what it refuses
  if (/[\u0000-\u001f\u007f]/.test(prefix)) return 'the prefix must not contain control characters';
  if (Buffer.byteLength(prefix, 'utf8') > MAX_PREFIX_BYTES) return `the prefix must be at most ${MAX_PREFIX_BYTES} bytes (UTF-8)`;
  return null;
}

/** Split "bucket/prefix" at the first '/'. */
export function splitDatasetName(name: string): { bucket: string; prefix: string } {
  const i = name.indexOf('/');
  return i < 0 ? { bucket: name, prefix: '' } : { bucket: name.slice(0, i), prefix: name.slice(i + 1) };
}

/** The rule a dataset name breaks, or null. */
export function datasetNameProblem(name: unknown, metaBucket?: string): string | null {
  if (typeof name !== 'string' || name === '') return 'a dataset name is required';
  const { bucket, prefix } = splitDatasetName(name);
  const b = bucketNameProblem(bucket);
  if (b) return b;
  if (metaBucket !== undefined && bucket === metaBucket) return `the meta bucket ${metaBucket} cannot be a dataset`;
  return name.includes('/') ? prefixProblem(prefix) : null;
}

/** Throws InvalidArgument naming the rule a dataset name breaks. */
export function checkDatasetName(name: unknown, metaBucket?: string): asserts name is string {
  const p = datasetNameProblem(name, metaBucket);
  if (p) throw new S3Error('InvalidArgument', `invalid dataset name ${JSON.stringify(name)}: ${p}`);
}

/** The registry document in the keystore. */
export class DatasetRegistry {
  constructor(private readonly keystore: Keystore) {}

  async read(): Promise<RegistryDoc> {
    const r = await this.keystore.readJson<RegistryDoc>(REGISTRY_KEY);
    const doc = r?.value;
    if (!doc || typeof doc !== 'object' || typeof doc.datasets !== 'object' || doc.datasets === null) return emptyDoc();
    return doc;
  }

  /**
   * Add an entry (conditional write). Returns whether this call created it; an existing entry is left as it is.
   */
  async add(entry: RegisteredDataset): Promise<boolean> {
    let created = false;
    await this.keystore.update<RegistryDoc>(REGISTRY_KEY, (cur) => {
      created = false;
      const doc = cur && typeof cur.datasets === 'object' && cur.datasets ? cur : emptyDoc();
      if (doc.datasets[entry.name]) return NO_CHANGE;
      doc.datasets[entry.name] = entry;
      created = true;
      return doc;
    });
    return created;
  }

  /** Add every missing entry in one write; returns the names this call created. */
  async addMissing(entries: RegisteredDataset[]): Promise<string[]> {
    let created: string[] = [];
    await this.keystore.update<RegistryDoc>(REGISTRY_KEY, (cur) => {
      created = [];
      const doc = cur && typeof cur.datasets === 'object' && cur.datasets ? cur : emptyDoc();
      for (const e of entries) {
        if (doc.datasets[e.name]) continue;
        doc.datasets[e.name] = e;
        created.push(e.name);
      }
      return created.length ? doc : NO_CHANGE;
    });
    return created;
  }

  /**
   * Record that a tenant owns a bucket (conditional write). The first claim wins and is never replaced: returns
   * the owner after the call (the caller's tenant when it won, or was already the owner).
   */
  async claimBucket(bucket: string, owner: BucketOwner): Promise<{ tenant: string; created: boolean }> {
    let out = { tenant: owner.tenant, created: false };
    await this.keystore.update<RegistryDoc>(REGISTRY_KEY, (cur) => {
      const doc = cur && typeof cur.datasets === 'object' && cur.datasets ? cur : emptyDoc();
      const have = doc.owners?.[bucket];
      if (have) {
        out = { tenant: have.tenant, created: false };
        return NO_CHANGE;
      }
      doc.owners = { ...(doc.owners ?? {}), [bucket]: owner };
      out = { tenant: owner.tenant, created: true };
      return doc;
    });
    return out;
  }

  /** Mark an entry closed (see `closedAt`); returns whether this call did. */
  async close(name: string): Promise<boolean> {
    let closed = false;
    await this.keystore.update<RegistryDoc>(REGISTRY_KEY, (cur) => {
      closed = false;
      const e = cur?.datasets?.[name];
      if (!e || e.closedAt) return NO_CHANGE;
      e.closedAt = new Date().toISOString();
      closed = true;
      return cur;
    });
    return closed;
  }

  /** Remove an entry; returns whether it was there. */
  async remove(name: string): Promise<boolean> {
    let removed = false;
    await this.keystore.update<RegistryDoc>(REGISTRY_KEY, (cur) => {
      removed = false;
      if (!cur?.datasets?.[name]) return NO_CHANGE;
      delete cur.datasets[name];
      removed = true;
      return cur;
    });
    return removed;
  }
}
