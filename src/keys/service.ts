/**
 * KeyService: the one entry point to keys for the gateway, the admin API and the CLI. A facade: it builds the
 * parts below on one shared core and delegates to them; it holds no key logic of its own.
 *
 *  - key-state.ts          the shared core: keystore, CMK registry, audit sink, the record and key caches (with
 *                          their generation and single-flight unwrap), the epoch bump after a change
 *  - datasets.ts           dataset resolution: bucket/key -> dataset, the header's dataset, the CMK of a new dataset
 *  - dataset-registry.ts   datasets as run-time objects (`keystore/datasets.json`), name rules; the config seeds it
 *  - kek-lifecycle.ts      KEKs: lazy create, active KEK and any version, rotate, revoke/restore, destroy
 *  - header-key-service.ts header keys: seal key, active key, re-key, re-wrap (job and lazy), retire
 *  - dek-revocations.ts    the per-dataset list of revoked blocks
 *  - cmk-admin.ts          CMK status, rotate (with re-wrap of KEKs and the audit key), disable/enable/destroy
 *  - keystore-io.ts        keystore export and import
 *  - views.ts              operator views (list, show)
 *  - epoch-watch.ts        the `keystore/epoch` poll (revocations by other gateways within ~1 s)
 *  - best-effort.ts        how failures nobody awaits are reported (log at warn once per streak, a counter hook)
 *  - audit-key.ts          the audit log's MAC secret (needs the keystore and the CMKs, not this service)
 *
 * Buffers returned by `activeKek`/`kek`/`headerKey`/`headerSealKey` are the cached ones: use them immediately
 * (derive, then drop the reference); they are zeroed when they leave the cache. Do not keep them across awaits of
 * unrelated work.
 */
import type { Backend } from '../backend/types.ts';
import type { HeaderVersion } from '../format/header.ts';
import { defaultOf } from '../ops/config.ts';
import type { Logger } from '../ops/logger.ts';
import { S3Error } from '../errors.ts';
import { BestEffort } from './best-effort.ts';
import type { CacheStats } from './cache.ts';
import { CmkAdmin, type CmkDestruction, type CmkRotateResult, type CmkStatus } from './cmk-admin.ts';
import { checkDatasetName, datasetNameProblem, DatasetRegistry, type RegisteredDataset } from './dataset-registry.ts';
import { Datasets, type DatasetConfig, type DatasetEntry, type TenantRouting } from './datasets.ts';
import { DekRevocations } from './dek-revocations.ts';
import { EpochWatch, type EpochFreshness } from './epoch-watch.ts';
import { HeaderKeyService, type HeaderKeyRewrap } from './header-key-service.ts';
import { KekLifecycle, type KekDestruction } from './kek-lifecycle.ts';
import { KeyState, type AuditSink } from './key-state.ts';
import { datasetIdOf, recordKey, type DatasetRecord, type Keystore } from './keystore.ts';
import { KeystoreIo, type ImportResult, type KeystoreExport } from './keystore-io.ts';
import type { CmkProvider } from './types.ts';
import { listDatasets, showDataset, type DatasetSummary, type DatasetView } from './views.ts';

export type { AuditSink, CmkRotateResult, CmkStatus, DatasetConfig, DatasetEntry, DatasetSummary, DatasetView, HeaderKeyRewrap, KeystoreExport, RegisteredDataset };

export interface KeyServiceOptions {
  backend: Backend;
  metaBucket: string;
  cmks: Record<string, CmkProvider>;
  defaultCmk: string;
  datasets?: DatasetConfig[];
  /** Tenants: a dataset of a bucket a tenant owns is created under the tenant's CMK (datasets.ts). */
  tenants?: TenantRouting[];
  /** Default: the settings table's `keyCacheTtlMs`. */
  cacheTtlMs?: number;
  /** Default: the settings table's `keyCacheSize`. */
  cacheMax?: number;
  /** Default: the settings table's `epochPollMs`. */
  epochPollMs?: number;
  /** Default: the settings table's `revocationBoundMs` (epoch-watch.ts: keys are refused when the epoch is older). */
  revocationBoundMs?: number;
  audit?: AuditSink;
  /** Where best-effort failures are logged (at warn, once per failure streak); none: not logged. */
  log?: Logger;
  /**
   * Called on every best-effort failure with a fixed label (`epoch-poll`, `lazy-rewrap`, `cmk-status-datasets`):
   * a counter for /metrics.
   */
  onBestEffortFailure?: (what: string) => void;
}

/** A default from the settings table (src/ops/config.ts), the one place defaults are written. */
export class KeyService {
  readonly backend: Backend;
  readonly metaBucket: string;
  readonly keystore: Keystore;
  readonly defaultCmk: string;
  private readonly state: KeyState;
  private readonly datasets: Datasets;
  private readonly keks: KekLifecycle;
  private readonly headerKeys: HeaderKeyService;
  private readonly revocations: DekRevocations;
  private readonly cmkAdmin: CmkAdmin;
  private readonly io: KeystoreIo;
  private readonly epoch: EpochWatch;
  private readonly registry: DatasetRegistry;
  /** Reload the registry on cache clears only between start() and stop(). */
  private started = false;
  private reloading?: Promise<void>;
  private reloadAgain = false;

  constructor(opts: KeyServiceOptions) {
    this.backend = opts.backend;
    this.metaBucket = opts.metaBucket;
    const max = opts.cacheMax ?? defaultOf('keyCacheSize');
    this.state = new KeyState({
      backend: opts.backend,
      metaBucket: opts.metaBucket,
      cmks: opts.cmks,
      defaultCmk: opts.defaultCmk,
      cacheTtlMs: opts.cacheTtlMs ?? defaultOf('keyCacheTtlMs'),
      cacheMax: max,
      audit: opts.audit,
      bestEffort: new BestEffort(opts.log, opts.onBestEffortFailure),
    });
    this.keystore = this.state.keystore;
    this.defaultCmk = this.state.defaultCmk;
    this.datasets = new Datasets(opts.datasets ?? [], this.state, opts.tenants ?? []);
    this.keks = new KekLifecycle(this.state, this.datasets);
    this.headerKeys = new HeaderKeyService(this.state, this.keks);
    this.revocations = new DekRevocations(this.state);
    this.cmkAdmin = new CmkAdmin(this.state);
    this.io = new KeystoreIo(this.state);
    this.epoch = new EpochWatch(this.state, opts.epochPollMs ?? defaultOf('epochPollMs'), opts.revocationBoundMs ?? defaultOf('revocationBoundMs'));
    this.registry = new DatasetRegistry(this.keystore);
    // every cache clear (an epoch change seen, a local change) reloads the routing table too
    this.state.onInvalidate(() => this.scheduleDatasetReload());
  }

  /**
   * Attach (or replace) the audit log after construction: start-up loads the audit key through this service's
   * keystore and CMKs (audit-key.ts), then builds the log.
   */
  setAudit(audit: AuditSink | undefined): void {
    this.state.audit = audit;
  }

  /** CMK provider by id (throws InvalidArgument when unknown). */
  cmk(id: string): CmkProvider {
    return this.state.cmk(id);
  }

  cmkIds(): string[] {
    return this.state.cmkIds();
  }

  get cacheStats(): CacheStats {
    return { ...this.state.kekCache.stats };
  }

  /** Unwrapped keys cached now (KEKs and header keys). */
  get cacheEntries(): number {
    return this.state.kekCache.size;
  }

  // ------------------------------------------------------------------ datasets (datasets.ts)

  /** Dataset of a new object: the longest registered or configured "bucket/prefix" matching the key, else the bucket. */
  datasetFor(bucket: string, key: string): string {
    return this.datasets.datasetFor(bucket, key);
  }

  /**
   * The dataset a stored header of bucket/key may name, from the datasetId in its fixed fields: the key's route
   * or an ancestor of it (the bucket, a shorter prefix: the route when the object was written); null otherwise.
   */
  headerDatasetFor(bucket: string, key: string, datasetId: Buffer): string | null {
    return this.datasets.headerDataset(bucket, key, datasetId);
  }

  /** The key's path in the routing tree: its route first, then every shorter matching dataset, the bucket last. */
  datasetAncestry(bucket: string, key: string): string[] {
    return this.datasets.ancestry(bucket, key);
  }

  /** The routing table as this gateway has it (configured and registered datasets). */
  routedDatasets(): DatasetEntry[] {
    return this.datasets.list();
  }

  /** Whether this gateway's configuration lists the dataset (seeded again at every start). */
  isConfiguredDataset(name: string): boolean {
    return this.datasets.isConfigured(name);
  }

  /** Read the registry now and route by it (a change made elsewhere, before the epoch poll would say). */
  async refreshDatasets(): Promise<void> {
    const doc = await this.registry.read();
    this.datasets.setRegistered(Object.values(doc.datasets), doc.owners ?? {});
  }

  /** The tenant owning a bucket (configured, or recorded when a tenant's user created it), as last loaded. */
  bucketOwner(bucket: string): string | undefined {
    return this.datasets.bucketOwner(bucket);
  }

  private scheduleDatasetReload(): void {
    if (!this.started) return;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        try {
          await this.refreshDatasets();
          this.state.bestEffort.ok('dataset-registry');
        } catch (e) {
          // keep routing by the table loaded last; the next epoch change or poll failure tries again
          this.state.bestEffort.failed('dataset-registry', e, 'dataset registry could not be read: routing by the table loaded last');
        }
      } while (this.reloadAgain && this.started);
    })().finally(() => (this.reloading = undefined));
  }

  /**
   * Register a dataset (InvalidArgument naming the rule a bad name breaks) and create its keystore record (KEK
   * version 1 under `cmk`, default: the configured or default CMK). Every gateway routes by it within an epoch
   * poll. Returns whether the registry entry and the record were created by this call.
   */
  async createDataset(name: string, o: { cmk?: string; actor?: string; tenant?: string } = {}): Promise<{ created: boolean; recordCreated: boolean }> {
    checkDatasetName(name, this.metaBucket);
    // `tenant`: a bucket a tenant's user created is the tenant's from now on, on every gateway (first claim wins)
    const claim = o.tenant === undefined ? undefined : await this.registry.claimBucket(name, { tenant: o.tenant, createdAt: new Date().toISOString(), createdBy: o.actor ?? 'system' });
    if (claim && claim.tenant !== o.tenant) throw new S3Error('AccessDenied', `bucket ${name} belongs to another tenant`);
    const cmk = o.cmk ?? this.datasets.cmkForNew(name);
    if (!this.state.hasCmk(cmk)) throw new S3Error('InvalidArgument', `unknown CMK "${cmk}"`);
    const existing = await this.keystore.getRecord(datasetIdOf(name));
    if (existing && o.cmk !== undefined && existing.value.cmkId !== o.cmk) {
      throw new S3Error('InvalidArgument', `dataset ${name} already has a key record under CMK "${existing.value.cmkId}"`);
    }
    const created = await this.registry.add({ name, cmk: existing?.value.cmkId ?? cmk, createdAt: new Date().toISOString(), createdBy: o.actor ?? 'system' });
    await this.refreshDatasets();
    await this.keks.recordOrCreate(name, o.actor);
    if (created || claim?.created) {
      await this.state.afterChange(`dataset create ${datasetIdOf(name)}`);
      await this.state.audit?.append('dataset.create', { dataset: name, datasetId: datasetIdOf(name), cmkId: existing?.value.cmkId ?? cmk, recordCreated: !existing, ...(o.tenant ? { tenant: o.tenant } : {}) }, o.actor);
    }
    return { created, recordCreated: !existing };
  }

  /** Remove a dataset from the registry (routing stops on every gateway within an epoch poll); its record stays. */
  async unregisterDataset(name: string, actor?: string): Promise<boolean> {
    const removed = await this.registry.remove(name);
    await this.refreshDatasets();
    if (removed) {
      await this.state.afterChange(`dataset unregister ${datasetIdOf(name)}`);
      await this.state.audit?.append('dataset.unregister', { dataset: name, datasetId: datasetIdOf(name) }, actor);
    }
    return removed;
  }

  /** After a full adoption: headers under the prefix may no longer name an ancestor, on every gateway. */
  async closeDataset(name: string, actor?: string): Promise<boolean> {
    const closed = await this.registry.close(name);
    await this.refreshDatasets();
    if (closed) await this.state.afterChange(`dataset closed ${datasetIdOf(name)}`);
    if (closed) await this.state.audit?.append('dataset.closed', { dataset: name, datasetId: datasetIdOf(name) }, actor);
    return closed;
  }

  /** Put a dataset back into the registry (a delete that found headers after all). */
  async reregisterDataset(entry: RegisteredDataset): Promise<void> {
    await this.registry.add(entry);
    await this.refreshDatasets();
    await this.state.afterChange(`dataset reregister ${datasetIdOf(entry.name)}`);
  }

  /** The registry entry of a dataset, read now (null: not registered). */
  async registeredDataset(name: string): Promise<RegisteredDataset | null> {
    return (await this.registry.read()).datasets[name] ?? null;
  }

  /**
   * Delete a dataset's keystore record: every KEK version and header key of it are gone for good. The caller
   * proves first that no header references the dataset (admin/api/datasets.ts).
   */
  async deleteDatasetRecord(name: string, actor?: string): Promise<boolean> {
    const had = !!(await this.keystore.getRecord(datasetIdOf(name)));
    if (had) await this.backend.deleteObject(this.metaBucket, recordKey(datasetIdOf(name)));
    await this.state.afterChange(`dataset delete ${datasetIdOf(name)}`);
    await this.state.audit?.append('dataset.delete', { dataset: name, datasetId: datasetIdOf(name), recordDeleted: had }, actor);
    return had;
  }

  datasetId(dataset: string): string {
    return datasetIdOf(dataset);
  }

  /** The dataset's record as this gateway has it cached (fresh: read again). */
  async datasetRecord(dataset: string, fresh = false): Promise<DatasetRecord | null> {
    return (await this.state.record(dataset, fresh))?.rec ?? null;
  }

  // ------------------------------------------------------------------ caches and epoch (key-state.ts, epoch-watch.ts)

  /** Run `fn` whenever the caches are dropped (revocation, epoch change): dependent caches drop theirs too. */
  onInvalidate(fn: () => void): void {
    this.state.onInvalidate(fn);
  }

  /**
   * Bumped by every cache clear (a revocation, rotation or any keystore change seen through the epoch, a failed
   * epoch poll). Streams in flight compare it once per input buffer: an integer compare while nothing changed,
   * a re-validation of their keys when it moved (src/server/live-revocation.ts).
   */
  get cacheGeneration(): number {
    return this.state.generation;
  }

  /** Drop (and zero) every cached KEK and record. */
  clearCaches(): void {
    this.state.clearCaches();
  }

  /**
   * Seed the dataset registry from the configuration (entries created when missing, never deleted; a configured
   * name that breaks the naming rules routes on this gateway only), start polling `keystore/epoch` (on change,
   * all caches are dropped and the registry is read again) and load the registry.
   */
  async start(): Promise<void> {
    await this.keystore.ensureBucket();
    const now = new Date().toISOString();
    const seeds = this.datasets
      .seeds()
      .filter((d) => datasetNameProblem(d.name, this.metaBucket) === null)
      .map((d) => ({ name: d.name, cmk: d.cmk, createdAt: now, createdBy: 'config' }));
    const created = seeds.length ? await this.registry.addMissing(seeds) : [];
    if (created.length) {
      await this.keystore.bumpEpoch(`datasets seeded: ${created.length}`);
      for (const name of created) await this.state.audit?.append('dataset.create', { dataset: name, datasetId: datasetIdOf(name), seeded: true }, 'config');
    }
    await this.epoch.start();
    this.started = true;
    await this.refreshDatasets();
  }

  /** One poll of the epoch (exposed for tests). */
  pollOnce(): Promise<void> {
    return this.epoch.pollOnce();
  }

  /** How old this gateway's knowledge of the revocation epoch is (the readiness probe answers from it). */
  epochFreshness(): EpochFreshness {
    return this.epoch.freshness();
  }

  /** epochFresh() for native threads: the monotonic ns up to which the epoch is confirmed (epoch-watch.ts). */
  get freshUntil(): BigInt64Array {
    return this.epoch.freshUntil;
  }

  /**
   * True while the epoch is confirmed within the bound (or before start()): a synchronous check cheap enough for
   * every buffer of a stream in flight (live-revocation.ts), so a stream stops at the bound even when no timer ran.
   */
  epochFresh(): boolean {
    return !this.epoch.started || this.epoch.isFresh();
  }

  /**
   * The gate in front of every key handed to the data path: resolves at once while the epoch is fresh, else
   * after one more poll confirms it within the bound, else rejects with 503 KeyStateStale (epoch-watch.ts).
   * Open before start() (a key service used by one process alone, as tools and unit tests do).
   */
  private fresh(): Promise<void> {
    return this.epoch.started ? this.epoch.ensureFresh() : Promise.resolve();
  }

  stop(): Promise<void> {
    this.started = false;
    return this.epoch.stop();
  }

  // ------------------------------------------------------------------ KEKs (kek-lifecycle.ts)

  /** The active KEK of a dataset (v1 created lazily). */
  async activeKek(dataset: string): Promise<{ version: number; key: Buffer }> {
    await this.fresh();
    return this.keks.activeKek(dataset);
  }

  /** KEK of a given version; KeyRevoked for revoked/destroyed versions or a disabled CMK version. */
  async kek(dataset: string, version: number): Promise<Buffer> {
    await this.fresh();
    return this.keks.kek(dataset, version);
  }

  /** New active KEK version; the previous active one becomes decrypt-only. Returns the new version number. */
  rotate(dataset: string, actor?: string): Promise<number> {
    return this.keks.rotate(dataset, actor);
  }

  /** Revoke one version, or all versions (no version). Reversible with restore (unless destroyed). */
  revoke(dataset: string, version?: number, actor?: string): Promise<number[]> {
    return this.keks.revoke(dataset, version, actor);
  }

  /** Undo a revoke (one version or all revoked versions). Destroyed versions cannot be restored. */
  restore(dataset: string, version?: number, actor?: string): Promise<number[]> {
    return this.keks.restore(dataset, version, actor);
  }

  /** Destruction with a waiting period: schedule, cancel, hold, destroy when due (kek-lifecycle.ts). */
  get kekDestruction(): KekDestruction {
    return this.keks;
  }

  // ------------------------------------------------------------------ header keys (header-key-service.ts)

  /** The key a header of this format version and key number is sealed under: a KEK version (1) or a header key (2). */
  async headerSealKey(dataset: string, version: HeaderVersion, keyNumber: number): Promise<Buffer> {
    await this.fresh();
    return this.headerKeys.headerSealKey(dataset, version, keyNumber);
  }

  /** Number of the header key new headers of the dataset are sealed under (made on first use after a rotation). */
  activeHeaderKeyNumber(dataset: string): Promise<number> {
    return this.headerKeys.activeHeaderKeyNumber(dataset);
  }

  /** The header key new headers of the dataset are sealed under, with its number. */
  async activeHeaderKey(dataset: string): Promise<{ n: number; key: Buffer }> {
    await this.fresh();
    return this.headerKeys.activeHeaderKey(dataset);
  }

  /** Start a fresh header key for new writes (a re-key); every gateway switches to it within a poll. */
  startHeaderKey(dataset: string, actor?: string): Promise<number> {
    return this.headerKeys.startHeaderKey(dataset, actor);
  }

  /** Header key n of the dataset; KeyRevoked while the KEK version it is wrapped under is revoked or destroyed. */
  async headerKey(dataset: string, n: number): Promise<Buffer> {
    await this.fresh();
    return this.headerKeys.headerKey(dataset, n);
  }

  /** Move every header key not under the active KEK version under it (one conditional record write). */
  rewrapHeaderKeys(dataset: string, actor?: string): Promise<HeaderKeyRewrap> {
    return this.headerKeys.rewrapHeaderKeys(dataset, actor);
  }

  /** Remove the header keys no header uses any more (the last step of a re-key), except the one new writes use. */
  retireHeaderKeys(dataset: string, below: number, referenced: ReadonlySet<number>, actor?: string): Promise<number[]> {
    return this.headerKeys.retireHeaderKeys(dataset, below, referenced, actor);
  }

  /** The lazy re-wrap on read, when header key n still sits under an older KEK version (one at a time per dataset). */
  rewrapHeaderKeysIfStale(dataset: string, n: number): Promise<unknown> {
    return this.headerKeys.rewrapHeaderKeysIfStale(dataset, n);
  }

  /** Record that every header of the dataset is format 2 (a re-wrap job found no format-1 header left). */
  markHeaderFormat2(dataset: string): Promise<void> {
    return this.headerKeys.markHeaderFormat2(dataset);
  }

  // ------------------------------------------------------------------ DEK revocations (dek-revocations.ts)

  /** The revocation list of one object as a synchronous predicate (part number, block). */
  async revocationCheck(dataset: string, oidHex: string): Promise<(part: number, block: number) => boolean> {
    await this.fresh();
    return this.revocations.revocationCheck(dataset, oidHex);
  }

  /** True if the block (or the whole object) is on the dataset's revocation list. */
  async isBlockRevoked(dataset: string, oidHex: string, part: number, block: number): Promise<boolean> {
    await this.fresh();
    return this.revocations.isBlockRevoked(dataset, oidHex, part, block);
  }

  /** Add blocks (or the whole object) to the dataset's revocation list. */
  revokeBlocks(dataset: string, oidHex: string, blocks: { part: number; block: number }[] | 'all', actor?: string, where?: { bucket: string; key: string }): Promise<number> {
    return this.revocations.revokeBlocks(dataset, oidHex, blocks, actor, where);
  }

  // ------------------------------------------------------------------ views (views.ts)

  list(): Promise<DatasetSummary[]> {
    return listDatasets(this.keystore);
  }

  show(dataset: string): Promise<DatasetView | null> {
    return showDataset(this.keystore, dataset);
  }

  // ------------------------------------------------------------------ CMK administration (cmk-admin.ts)

  cmkStatus(): Promise<CmkStatus[]> {
    return this.cmkAdmin.cmkStatus();
  }

  /** New CMK version; every KEK and the audit key re-wrapped under it; then the old versions disabled. */
  cmkRotate(cmkId: string, actor?: string): Promise<CmkRotateResult> {
    return this.cmkAdmin.cmkRotate(cmkId, actor);
  }

  cmkDisable(cmkId: string, version: number, actor?: string): Promise<void> {
    return this.cmkAdmin.cmkDisable(cmkId, version, actor);
  }

  cmkEnable(cmkId: string, version: number, actor?: string): Promise<void> {
    return this.cmkAdmin.cmkEnable(cmkId, version, actor);
  }

  /** CMK destruction with a waiting period (cmk-admin.ts; awskms: the KMS's own). */
  get cmkDestruction(): CmkDestruction {
    return this.cmkAdmin;
  }

  // ------------------------------------------------------------------ export / import (keystore-io.ts)

  /** JSON of every dataset record (KEKs stay wrapped under their CMKs) and the wrapped audit key. */
  exportKeystore(actor?: string): Promise<Buffer> {
    return this.io.exportKeystore(actor);
  }

  /** Import an export: missing records are created, existing ones merged (never weakened). */
  importKeystore(buf: Buffer, actor?: string, o: { force?: boolean } = {}): Promise<ImportResult> {
    return this.io.importKeystore(buf, actor, o);
  }
}
