/**
 * Dataset resolution: which dataset an object belongs to (the longest configured "bucket/prefix" matching its
 * key, else its bucket) and which CMK a new dataset is bound to. The rest of the key service sees only
 * `DatasetResolver`, so the configured list can become run-time objects without touching the other parts.
 */
import { S3Error } from '../errors.ts';

export interface DatasetConfig {
  /** "bucket" or "bucket/prefix". */
  name: string;
  /** CMK id (key of `cmks`); default `defaultCmk`. */
  cmk?: string;
}

/** One configured dataset, resolved. */
export interface DatasetEntry {
  name: string;
  bucket: string;
  /** '' for a whole-bucket dataset. */
  prefix: string;
  cmk: string;
}

/** What the other parts of the key service need to know about datasets. */
export interface DatasetResolver {
  /** Dataset of an object: the longest configured "bucket/prefix" matching the key, else the bucket. */
  datasetFor(bucket: string, key: string): string;
  /** CMK a dataset's record is created under (its configured CMK, else the default). */
  cmkForNew(dataset: string): string;
}

export class Datasets implements DatasetResolver {
  private readonly entries: DatasetEntry[];
  private readonly defaultCmk: string;

  /** `cmks.hasCmk` says whether a CMK id is configured; an unknown one is refused here, at start-up. */
  constructor(configs: DatasetConfig[], cmks: { defaultCmk: string; hasCmk(id: string): boolean }) {
    this.defaultCmk = cmks.defaultCmk;
    this.entries = configs.map((d) => {
      const cmk = d.cmk ?? cmks.defaultCmk;
      if (!cmks.hasCmk(cmk)) throw new S3Error('InvalidArgument', `dataset ${d.name}: CMK "${cmk}" not configured`);
      const i = d.name.indexOf('/');
      return i < 0
        ? { bucket: d.name, prefix: '', name: d.name, cmk }
        : { bucket: d.name.slice(0, i), prefix: d.name.slice(i + 1), name: d.name, cmk };
    });
  }

  datasetFor(bucket: string, key: string): string {
    let best: { name: string; len: number } | undefined;
    for (const d of this.entries) {
      if (d.bucket !== bucket) continue;
      if (!key.startsWith(d.prefix)) continue;
      if (!best || d.prefix.length > best.len) best = { name: d.name, len: d.prefix.length };
    }
    return best ? best.name : bucket;
  }

  cmkForNew(dataset: string): string {
    return this.entries.find((d) => d.name === dataset)?.cmk ?? this.defaultCmk;
  }

  /** The configured datasets (a copy). */
  list(): DatasetEntry[] {
    return this.entries.map((d) => ({ ...d }));
  }
}
