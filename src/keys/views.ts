/**
 * Operator views of the keystore (admin API, CLI, dashboard): a summary of every dataset, and one dataset's
 * record with the wrapped blobs left out. Read straight from the keystore, never from the caches.
 */
import { datasetIdOf, type DatasetRecord, type HeaderKeyRecord, type KekVersionRecord, type Keystore } from './keystore.ts';

export interface DatasetSummary {
  dataset: string;
  datasetId: string;
  cmkId: string;
  activeVersion: number | null;
  versions: { version: number; state: KekVersionRecord['state']; createdAt: string; cmkVersion: number | null; destroyAt?: string }[];
  revokedBlocks: number;
}

/** A record as shown to operators: wrapped blobs are omitted. */
export type DatasetView = Omit<DatasetRecord, 'versions' | 'headerKeys'> & {
  versions: (Omit<KekVersionRecord, 'wrapped'> & { wrapped: { cmkId: string; cmkVersion: number } | null })[];
  headerKeys: Omit<HeaderKeyRecord, 'blob'>[];
};

/** Every dataset in the keystore, by name. */
export async function listDatasets(keystore: Pick<Keystore, 'listRecords'>): Promise<DatasetSummary[]> {
  const recs = await keystore.listRecords();
  return recs
    .map((r) => ({
      dataset: r.dataset,
      datasetId: r.datasetId,
      cmkId: r.cmkId,
      activeVersion: r.versions.find((v) => v.state === 'active')?.version ?? null,
      versions: r.versions.map((v) => ({ version: v.version, state: v.state, createdAt: v.createdAt, cmkVersion: v.wrapped?.cmkVersion ?? null, ...(v.destroyAt ? { destroyAt: v.destroyAt } : {}) })),
      revokedBlocks: r.revokedBlocks.length,
    }))
    .sort((a, b) => a.dataset.localeCompare(b.dataset));
}

/** One dataset's record without its wrapped blobs; null when it has none. */
export async function showDataset(keystore: Pick<Keystore, 'getRecord'>, dataset: string): Promise<DatasetView | null> {
  const r = await keystore.getRecord(datasetIdOf(dataset));
  if (!r) return null;
  return {
    ...r.value,
    versions: r.value.versions.map((v) => ({ ...v, wrapped: v.wrapped ? { cmkId: v.wrapped.cmkId, cmkVersion: v.wrapped.cmkVersion } : null })),
    headerKeys: (r.value.headerKeys ?? []).map(({ blob: _blob, ...k }) => k),
  };
}
